#!/usr/bin/env python3
"""Print the import graph's size and its cycles (grimp, which import-linter uses).

Counts every import of a ``titans3`` module by another: module level, inside
functions and under ``if TYPE_CHECKING:`` alike (and, for comparison, the
runtime-only graph without the ``TYPE_CHECKING`` ones).  A *cycle group* is a
set of modules that reach each other through imports (a strongly connected
component of more than one module); a *mutual pair* two modules importing
each other directly.  *Classes with bases from other modules* are classes
built on a ``titans3`` class defined in another module, exception
hierarchies aside: the mixin pattern issue 9 removed.

    scripts/import_graph.py                      # the titans3 importable here
    scripts/import_graph.py --tree DIR           # the titans3 package in DIR
    scripts/import_graph.py --rev main~3 --rev HEAD   # git revisions: a table

``--rev`` checks the revision out in a temporary ``git worktree`` and removes
it afterwards.  grimp skips a directory without ``__init__.py`` (an implicit
namespace package, as ``titans3/objects`` was before issue 9), so in such a
checkout the script adds an empty one first -- the same modules, imported the
same way, now counted -- and says so; ``--tree`` only warns.  ``--json``
prints the counts as JSON.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import grimp


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    succ = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def _counts(graph: grimp.ImportGraph) -> tuple[int, list[list[str]], int]:
    edges = sum(len(graph.find_modules_directly_imported_by(m)) for m in graph.modules)
    mutual = sum(
        1 for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.direct_import_exists(importer=b, imported=a)
    )
    return edges, strongly_connected(graph), mutual


def _imported_names(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> dotted target, for ``import`` and ``from`` imports anywhere in the module."""
    out: dict[str, str] = {}
    pkg = module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out[a.asname or a.name] = f"{base}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    return out


def foreign_bases(root: Path, package: str) -> list[str]:
    """``module.Class(bases)`` for every class with a base that is a class of
    another module of ``package`` -- exception classes aside."""
    classes: dict[str, list[str]] = {}  # "mod.Class" -> resolved base names
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        tree = ast.parse(path.read_text(), str(path))
        names = _imported_names(tree, module if rel.name != "__init__" else module + ".x")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = []
            for b in node.bases:
                text = ast.unparse(b).split("[")[0]
                head, _, rest = text.partition(".")
                target = names.get(head)
                bases.append(f"{target}.{rest}" if target and rest else target
                             or f"{module}.{text}")
            classes[f"{module}.{node.name}"] = bases

    def is_exception(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in ("Exception", "BaseException") or name.endswith(("Error", "Exception")):
            return True
        return name not in seen and any(is_exception(b, seen | {name})
                                        for b in classes.get(name, []))

    out = []
    for cls, bases in sorted(classes.items()):
        mod = cls.rsplit(".", 1)[0]
        foreign = [b for b in bases if b in classes and b.rsplit(".", 1)[0] != mod]
        if foreign and not is_exception(cls):
            out.append(f"{cls}({', '.join(foreign)})")
    return out


def namespace_dirs(root: Path) -> list[Path]:
    """Directories below the package ``root`` holding modules but no ``__init__.py``."""
    return sorted({p.parent for p in root.rglob("*.py")
                   if not (p.parent / "__init__.py").exists()})


def measure(package: str = "titans3") -> dict[str, object]:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, f"{package} is not importable"
    skipped = namespace_dirs(Path(spec.origin).parent)
    for d in skipped:
        print(f"warning: {d} has no __init__.py: grimp leaves its modules out", file=sys.stderr)
    graph = grimp.build_graph(package, include_external_packages=False, cache_dir=None)
    edges, groups, mutual = _counts(graph)
    runtime = grimp.build_graph(package, include_external_packages=False, cache_dir=None,
                                exclude_type_checking_imports=True)
    r_edges, r_groups, _ = _counts(runtime)
    mixed = foreign_bases(Path(spec.origin).parent.parent, package)
    return {
        "path": str(Path(spec.origin).parent),
        "modules": len(graph.modules),
        "edges": edges,
        "cycle_groups": len(groups),
        "modules_in_cycles": sum(len(g) for g in groups),
        "mutual_pairs": mutual,
        "groups": groups,
        "runtime_edges": r_edges,
        "runtime_cycle_groups": len(r_groups),
        "runtime_modules_in_cycles": sum(len(g) for g in r_groups),
        "foreign_base_classes": len(mixed),
        "classes": mixed,
    }


def measure_tree(tree: Path, package: str) -> dict[str, object]:
    """``measure`` in a child whose ``titans3`` is the one in ``tree``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, __file__, "--json", package], env=env, cwd=tree,
                         check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    if Path(doc["path"]).resolve() != (tree / package).resolve():
        raise SystemExit(f"measured {doc['path']}, not {tree / package} (an installed copy?)")
    return doc


def measure_rev(rev: str, package: str) -> dict[str, object]:
    top = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                              capture_output=True, text=True).stdout.strip())
    commit = subprocess.run(["git", "rev-parse", "--short", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="import-graph-") as tmp:
        wt = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(top), "worktree", "add", "--detach", "--quiet",
                        str(wt), commit], check=True)
        try:
            filled = namespace_dirs(wt / package)
            for d in filled:
                (d / "__init__.py").write_text("")
            doc = measure_tree(wt, package)
            doc["namespace_dirs_filled"] = [str(d.relative_to(wt)) for d in filled]
        finally:
            subprocess.run(["git", "-C", str(top), "worktree", "remove", "--force", str(wt)],
                           check=True)
    doc["rev"] = f"{rev} ({commit})" if rev != commit else commit
    return doc


ROWS = [
    ("modules", "modules"),
    ("import edges (TYPE_CHECKING included)", "edges"),
    ("cycle groups (TYPE_CHECKING included)", "cycle_groups"),
    ("modules in cycles", "modules_in_cycles"),
    ("mutual imports (A <-> B)", "mutual_pairs"),
    ("runtime import edges", "runtime_edges"),
    ("runtime cycle groups (TYPE_CHECKING left out)", "runtime_cycle_groups"),
    ("classes with bases from other modules (mixins)", "foreign_base_classes"),
]


def table(docs: list[dict[str, object]]) -> str:
    lines = ["| | " + " | ".join(str(d.get("rev", d["path"])) for d in docs) + " |",
             "|---|" + "---:|" * len(docs)]
    lines += [f"| {label} | " + " | ".join(str(d[key]) for d in docs) + " |" for label, key in ROWS]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tree", action="append", default=[], type=Path,
                    help="a directory holding the package (repeatable)")
    ap.add_argument("--rev", action="append", default=[],
                    help="a git revision of this repository (repeatable)")
    ap.add_argument("package", nargs="?", default="titans3")
    args = ap.parse_args()
    docs = [measure_tree(t.resolve(), args.package) for t in args.tree]
    docs += [measure_rev(r, args.package) for r in args.rev]
    if not docs:
        docs = [measure(args.package)]
    if args.json:
        json.dump(docs[0] if len(docs) == 1 else docs, sys.stdout, indent=1)
        print()
        return 0
    if len(docs) > 1:
        print(table(docs))
    for doc in docs:
        print(f"{doc.get('rev', doc['path'])}: modules {doc['modules']}, import edges "
              f"{doc['edges']}, cycle groups {doc['cycle_groups']} "
              f"({doc['modules_in_cycles']} modules), mutual imports {doc['mutual_pairs']}; "
              f"without TYPE_CHECKING: {doc['runtime_edges']} edges, "
              f"{doc['runtime_cycle_groups']} cycle groups; "
              f"classes with bases from other modules {doc['foreign_base_classes']}")
        for d in doc.get("namespace_dirs_filled", []):  # type: ignore[union-attr]
            print(f"  (counted {d}/ by adding an empty __init__.py to the checkout)")
        for g in doc["groups"]:  # type: ignore[union-attr]
            print(f"  cycle: {' '.join(g)}")
        for c in doc["classes"]:  # type: ignore[union-attr]
            print(f"  class: {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
