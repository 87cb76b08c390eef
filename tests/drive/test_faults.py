"""Injected drive faults (titans3/drive/faults.py): the plan and the file."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest

from titans3.drive import faults
from titans3.drive.faults import FaultInjector, FaultPlan


def test_an_empty_or_absent_plan_injects_nothing(tmp_path: Path) -> None:
    assert FaultPlan.parse("").decide("read") == (0.0, False)
    FaultInjector(tmp_path).apply("write")  # no file: no fault


def test_a_plan_names_its_delay_and_eio_per_kind() -> None:
    p = FaultPlan.parse('{"read_delay": 1.5, "write_eio": true}')
    assert p.decide("read") == (1.5, False)
    assert p.decide("write") == (0.0, True)


@pytest.mark.parametrize("raw", ['{"read_dlay": 1}', '[1]', '{"read_delay": -1}', '{"write_eio": "x"'])
def test_a_bad_plan_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        FaultPlan.parse(raw)


def test_the_injector_follows_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "RECHECK", 0.0)
    inj = FaultInjector(tmp_path)
    (tmp_path / faults.FAULT_FILE).write_text(json.dumps({"read_eio": True}))
    with pytest.raises(OSError) as e:
        inj.apply("read")
    assert e.value.errno == errno.EIO
    inj.apply("write")
    (tmp_path / faults.FAULT_FILE).unlink()
    inj.apply("read")  # removed: cleared
    (tmp_path / faults.FAULT_FILE).write_text(json.dumps({"write_delay": 0.05}))
    t0 = time.monotonic()
    inj.apply("write")
    assert time.monotonic() - t0 >= 0.05
    assert inj.injected == 2
