"""titans3.core.gctune: start-up's objects frozen, the young generation collected less often,
and cyclic garbage made after it still collected."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_tuning_freezes_startup_and_still_collects_new_cycles() -> None:
    code = textwrap.dedent("""
        import gc, weakref
        from titans3.core import gctune
        gctune.tune_for_serving()
        assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
        assert gc.get_threshold()[0] == gctune.GEN0_THRESHOLD
        class Node:
            pass
        a, b = Node(), Node()
        a.other, b.other = b, a          # a cycle made after start-up
        gone = weakref.ref(a)
        del a, b
        kept = [[] for _ in range(gctune.GEN0_THRESHOLD * 2)]  # net allocations trigger the collector
        assert gone() is None, "a cycle made after tuning was never collected"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
