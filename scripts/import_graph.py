#!/usr/bin/env python3
"""Print the import graph's size and its cycles (grimp, which import-linter uses).

Counts every import of a ``titans3`` module by another: module level, inside
functions and under ``if TYPE_CHECKING:`` alike.  A *cycle group* is a set of
modules that reach each other through imports (a strongly connected component
of more than one module).  ``--json`` prints the counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

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


def measure(package: str = "titans3") -> dict[str, object]:
    graph = grimp.build_graph(package, include_external_packages=False, cache_dir=None)
    edges = sum(len(graph.find_modules_directly_imported_by(m)) for m in graph.modules)
    groups = strongly_connected(graph)
    mutual = sorted(
        (a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.direct_import_exists(importer=b, imported=a)
    )
    return {
        "modules": len(graph.modules),
        "edges": edges,
        "cycle_groups": len(groups),
        "modules_in_cycles": sum(len(g) for g in groups),
        "mutual_pairs": len(mutual),
        "groups": groups,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("package", nargs="?", default="titans3")
    args = ap.parse_args()
    doc = measure(args.package)
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
        return 0
    print(f"modules {doc['modules']}, import edges {doc['edges']}, cycle groups "
          f"{doc['cycle_groups']} ({doc['modules_in_cycles']} modules), "
          f"mutual imports {doc['mutual_pairs']}")
    for g in doc["groups"]:  # type: ignore[union-attr]
        print(f"  cycle: {' '.join(g)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
