"""Imports point down the layers (docs/architecture.md, "Layers"), checked.

Every module of the package is parsed (no import needed); each ``import`` or
``from ... import`` of a ``titans3`` module that runs at import or call time
must name a module in the same or a lower layer.  Imports under ``if
TYPE_CHECKING:`` are annotations only (the daemon's ``Host`` type, for
instance) and are not held to the rule.  A module belongs to the layer of the
longest prefix that names it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import titans3

# Top to bottom.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("titans3.cli", "titans3.__main__")),
    ("daemon", ("titans3.daemon", "titans3.runtime")),
    ("fronts", ("titans3.s3", "titans3.web", "titans3.peer.app", "titans3.fuse", "titans3.nbd")),
    ("cluster", ("titans3.cluster",)),
    ("object", ("titans3.objects",)),
    ("workers", ("titans3.workers",)),
    ("placement", ("titans3.ring", "titans3.erasure")),
    ("disks", ("titans3.disks",)),
    ("drives", ("titans3.drive",)),
    ("peer signing", ("titans3.peer",)),
    ("core", ("titans3.core", "titans3")),
]
PACKAGE = Path(titans3.__file__).parent


def layer_of(module: str) -> int:
    best, rank = -1, len(LAYERS)
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank < len(LAYERS), f"{module} is in no layer"
    return rank


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def runtime_imports(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    out: list[tuple[int, str]] = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("titans3")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("titans3"):
                # ``from titans3.x import y`` may import the submodule titans3.x.y
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.append((node.lineno, sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                                else target))
    return out


def violations(modules: list[tuple[Path, str]] | None = None) -> list[str]:
    bad = []
    if modules is None:
        modules = [(p, module_name(p)) for p in sorted(PACKAGE.rglob("*.py"))]
    for path, module in modules:
        mine = layer_of(module)
        for line, target in runtime_imports(path, module):
            theirs = layer_of(target)
            if theirs < mine:
                bad.append(f"{module}:{line} imports {target} "
                           f"({LAYERS[mine][0]} -> {LAYERS[theirs][0]}, upwards)")
    return bad


def test_every_runtime_import_points_down_the_layers():
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    assert layer_of("titans3.objects.store") > layer_of("titans3.cluster.membership")
    assert layer_of("titans3.peer.app") < layer_of("titans3.peer.auth")  # app is a front
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from titans3.daemon import Host\n"
                     "def f():\n    from titans3.objects.store import ObjectStore\n")
    found = violations([(probe, "titans3.drive.probe")])
    assert len(found) == 1 and "titans3.objects.store" in found[0]  # the type-only one is fine
