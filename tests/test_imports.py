"""The import graph: no cycles, and the object API is what the store implements.

The layer and front rules are import-linter contracts (``pyproject.toml``,
run by ``lint-imports`` in ``scripts/test.sh``).  Import-linter has no
contract for "no cycles anywhere", so this checks it with grimp, the graph
library import-linter is built on: every import counts -- module level,
inside functions and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import titans3
from titans3.objects import api
from titans3.objects.store import ObjectStore

SCRIPT = Path(titans3.__file__).parent.parent / "scripts" / "import_graph.py"

def _graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_no_module_reaches_itself_through_imports():
    doc = _graph_tool().measure("titans3")
    assert doc["groups"] == [], "import cycles (each group: modules importing each other)"


def test_the_cycle_finder_sees_a_cycle_and_its_absence(tmp_path, monkeypatch):
    pkg = tmp_path / "cyc_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from cyc_probe import b\n")
    (pkg / "b.py").write_text("def f():\n    from cyc_probe import c\n")
    (pkg / "c.py").write_text("import cyc_probe.a\n")
    (pkg / "d.py").write_text("import cyc_probe.c\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = _graph_tool().measure("cyc_probe")
    assert doc["groups"] == [["cyc_probe.a", "cyc_probe.b", "cyc_probe.c"]]
    (pkg / "c.py").write_text("")
    assert _graph_tool().measure("cyc_probe")["groups"] == []


def _protocol_methods() -> dict[str, inspect.Signature]:
    out = {}
    for name, fn in vars(api.ObjectAPI).items():
        if not name.startswith("_") and callable(fn):
            out[name] = inspect.signature(fn)
    return out


def test_the_object_api_lists_every_operation_the_fronts_use():
    assert {"put_object", "get_object", "head_objects", "walk_objects", "statfs",
            "complete_multipart", "copy_object", "list_object_versions"} <= set(_protocol_methods())


@pytest.mark.parametrize("name", sorted(_protocol_methods()))
def test_the_object_store_implements_the_api_exactly(name):
    want = _protocol_methods()[name]
    got = inspect.signature(getattr(ObjectStore, name))
    strip = [p.replace(annotation=inspect.Parameter.empty) for p in list(want.parameters.values())[1:]]
    have = [p.replace(annotation=inspect.Parameter.empty) for p in list(got.parameters.values())[1:]]
    assert have == strip, f"ObjectStore.{name}{got} differs from ObjectAPI.{name}{want}"
    assert inspect.iscoroutinefunction(getattr(ObjectStore, name)) == \
        inspect.iscoroutinefunction(getattr(api.ObjectAPI, name)) or \
        inspect.isasyncgenfunction(getattr(ObjectStore, name))
