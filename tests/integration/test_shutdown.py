"""The daemon contract: SIGTERM and SIGINT shut it down cleanly with exit status 0,
and what was written before is there after the next start."""

from __future__ import annotations

import signal

import pytest

from .cluster import Daemon, s3_client


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_daemon_with_exit_0_and_data_survives(
    daemon: Daemon, sig: signal.Signals
) -> None:
    s3 = s3_client(daemon)
    s3.create_bucket(Bucket="shutdown")
    s3.put_object(Bucket="shutdown", Key="k", Body=b"still here")
    rc = daemon.stop(timeout=20, sig=sig)
    assert rc == 0, f"exit status {rc} after {sig.name}\n{daemon.log_tail(40)}"
    assert "Traceback" not in daemon.log_text()
    daemon.start()
    got = s3_client(daemon).get_object(Bucket="shutdown", Key="k")["Body"].read()
    assert got == b"still here"
