"""Drive the real ``titans3 serve`` daemon from tests.

Theory of operation
-------------------
Integration tests only rely on the daemon's fixed command-line contract::

    titans3 serve --data DIR --drives N --listen H:P --peer-listen H:P --web-listen H:P

so this module knows nothing about TitanS3 internals except the on-disk drive
layout that the contract documents (``DIR/drive-i/{chunks,staging,quarantine}``).

Invariants the harness keeps:

* Everything binds and connects to 127.0.0.1 only.  Ports are picked at random
  from a range below the kernel's ephemeral range and bind-tested first, so two
  test runs (or two daemons in one test) do not collide.
* The daemon runs in its own session/process group (``start_new_session``), so
  :meth:`Daemon.kill` can SIGKILL it *and* any helper processes it forked --
  a crash test must leave nothing running that still holds the drives.
* Every start appends to one log file per daemon; the log is what a failing test
  shows (see ``conftest.pytest_runtest_makereport``).  :meth:`Daemon.log_mark` /
  :meth:`Daemon.log_since` let a test look only at what its own requests caused.
* The environment the daemon sees is explicit: fixed root credentials (or none,
  so it generates them and prints ``AWS_ACCESS_KEY_ID=...``), unbuffered stdout,
  and no stray ``AWS_*`` variables from whoever runs the tests.

Clients: :func:`s3_client` (boto3) and :class:`AwsCli` (the AWS CLI).  Raw
signed HTTP and streamed bodies live in :mod:`.rawhttp`.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_VENV_BIN = REPO / ".venv" / "bin"
BIN = _VENV_BIN if _VENV_BIN.is_dir() else Path(sys.executable).parent
TITANS3 = BIN / "titans3"
TITANCTL = BIN / "titanctl"
AWS = BIN / "aws"

HOST = "127.0.0.1"
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MiB = 1024 * 1024
GiB = 1024 * MiB

START_TIMEOUT = float(os.environ.get("TITANS3_TEST_START_TIMEOUT", "60"))
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


# 20/40 characters like AWS keys, so nothing length-sensitive is skipped.
ROOT = Credentials("TITANSTESTROOTKEY001", "titans3-test-root-secret-key-0123456789ab")


# Daemons whose fixture has not torn down yet: conftest shows their log tails
# when a test fails.
LIVE: list[Daemon] = []


class DaemonError(RuntimeError):
    """The daemon did not start, died, or did not stop; the message has the log tail."""


# ---------------------------------------------------------------------- ports
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that binds right now and was not handed out before.

    Picked at random from 20000-32000 (below Linux's ephemeral range, so a
    client socket cannot grab it between our bind test and the daemon's bind).
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 after 200 tries")


def port_answers_http(port: int, timeout: float = 1.0) -> bool:
    """True when something on 127.0.0.1:port answers an HTTP request (any status)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------- daemon
_CRED_RE = {
    name: re.compile(rf"^\s*(?:export\s+)?{name}=['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
}


def parse_printed_credentials(text: str) -> Credentials | None:
    """The last ``AWS_ACCESS_KEY_ID=`` / ``AWS_SECRET_ACCESS_KEY=`` pair in ``text``."""
    found = {name: rx.findall(text) for name, rx in _CRED_RE.items()}
    if not found["AWS_ACCESS_KEY_ID"] or not found["AWS_SECRET_ACCESS_KEY"]:
        return None
    return Credentials(found["AWS_ACCESS_KEY_ID"][-1], found["AWS_SECRET_ACCESS_KEY"][-1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test runner's environment minus anything that would steer the daemon or AWS tools."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TITANS3_")) or k == "TITANS3_TEST_START_TIMEOUT"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra or {})
    return env


class Daemon:
    """One ``titans3 serve`` process (or a script that ends up running one).

    ``credentials=None`` starts it without root credentials in the environment;
    the generated ones are then parsed from its stdout after it is ready.
    ``command`` replaces the default ``titans3 serve ...`` argv (the README
    quick-start test runs ``scripts/start.sh``); ``signal_group`` then sends
    SIGTERM to the whole group, since a wrapper shell does not forward it.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        drives: int = 6,
        credentials: Credentials | None = ROOT,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        signal_group: bool = False,
        name: str = "titans3",
        ports: tuple[int, int, int] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.drives = drives
        self.name = name
        self.s3_port, self.peer_port, self.web_port = ports or (
            free_port(),
            free_port(),
            free_port(),
        )
        self._fixed_credentials = credentials
        self._credentials = credentials
        self._command = command
        self._env_extra = dict(env or {})
        self._cwd = cwd or REPO
        self.start_timeout = start_timeout
        self.signal_group = signal_group
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []
        self._recorded: subprocess.Popen[bytes] | None = None

    # -- addresses
    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def web_endpoint(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    @property
    def credentials(self) -> Credentials:
        if self._credentials is None:
            raise DaemonError(f"{self.name}: credentials not known (never started?)")
        return self._credentials

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise DaemonError(f"{self.name}: not started")
        return self.proc.pid

    def drive_dir(self, i: int) -> Path:
        return self.data_dir / f"drive-{i}"

    def argv(self) -> list[str]:
        if self._command is not None:
            return list(self._command)
        return [
            str(TITANS3), "serve",
            "--data", str(self.data_dir),
            "--drives", str(self.drives),
            "--listen", f"{HOST}:{self.s3_port}",
            "--peer-listen", f"{HOST}:{self.peer_port}",
            "--web-listen", f"{HOST}:{self.web_port}",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        extra = dict(self._env_extra)
        if self._fixed_credentials is not None:
            extra["TITANS3_ROOT_ACCESS_KEY"] = self._fixed_credentials.access_key
            extra["TITANS3_ROOT_SECRET_KEY"] = self._fixed_credentials.secret_key
        return clean_env(extra)

    # -- lifecycle
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait: bool = True) -> Daemon:
        if self.running:
            raise DaemonError(f"{self.name}: already running (pid {self.pid})")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        with open(self.log_path, "ab") as log:
            stamp = time.strftime("%H:%M:%S")
            log.write(f"\n===== {stamp} start: {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self.environment(),
                start_new_session=True,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the S3 port answers HTTP and the credentials are known."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while not port_answers_http(self.s3_port):
            self._check_alive("while starting")
            if time.monotonic() > deadline:
                raise DaemonError(
                    f"{self.name}: S3 port {self.s3_port} not answering after "
                    f"{timeout or self.start_timeout:.0f}s\n{self.log_tail()}"
                )
            time.sleep(0.1)
        if self._fixed_credentials is None:
            # Printed at first start; the port may answer a moment before the
            # line is flushed, so give it the rest of the budget.
            while (creds := parse_printed_credentials(self.log_text())) is None:
                self._check_alive("before printing credentials")
                if time.monotonic() > deadline:
                    raise DaemonError(
                        f"{self.name}: no AWS_ACCESS_KEY_ID=/AWS_SECRET_ACCESS_KEY= lines "
                        f"on stdout\n{self.log_tail()}"
                    )
                time.sleep(0.1)
            self._credentials = creds

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            raise DaemonError(f"{self.name}: exited with {rc} {when}\n{self.log_tail()}")

    def _signal(self, sig: int, *, group: bool) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.proc.pid, sig)  # our own session: pgid == pid
            else:
                os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT, sig: int = signal.SIGTERM) -> int | None:
        """SIGTERM (or ``sig``), then SIGKILL after ``timeout``.  Returns the exit code.

        Always leaves no process of the daemon's group behind.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(sig, group=self.signal_group)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._append_log(f"harness: no exit {timeout:.0f}s after signal {sig}; SIGKILL")
                self._signal(signal.SIGKILL, group=True)
                self.proc.wait(30)
        # Helpers the daemon forked must not outlive it (they would hold drives).
        self._signal(signal.SIGKILL, group=True)
        return self._record_exit()

    def kill(self) -> int:
        """SIGKILL the daemon's whole process group -- a crash, not a shutdown."""
        if self.proc is None:
            raise DaemonError(f"{self.name}: not started")
        self._signal(signal.SIGKILL, group=True)
        self.proc.wait(30)
        rc = self._record_exit()
        assert rc is not None
        return rc

    def restart(self, *, crash: bool = False) -> Daemon:
        """Stop (SIGTERM, or SIGKILL when ``crash``) and start again on the same data and ports."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def _record_exit(self) -> int | None:
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is not None and self._recorded is not self.proc:
            self._recorded = self.proc
            self._append_log(f"harness: pid {self.proc.pid} exited with {rc}")
            self.exit_codes.append(rc)
        return rc

    # -- logs
    def _append_log(self, line: str) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "ab") as log:
            log.write(f"===== {time.strftime('%H:%M:%S')} {line}\n".encode())

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def log_mark(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # -- resources
    def rss_bytes(self) -> int:
        import psutil

        return psutil.Process(self.pid).memory_info().rss

    def fragment_files(self, drive: int | None = None) -> list[Path]:
        """Fragment files under ``chunks/`` (``drive`` or all drives), by path order."""
        drives = [drive] if drive is not None else range(self.drives)
        out: list[Path] = []
        for i in drives:
            chunks = self.drive_dir(i) / "chunks"
            if chunks.is_dir():
                out.extend(p for p in chunks.rglob("*") if p.is_file())
        return sorted(out)

    def __repr__(self) -> str:
        state = f"pid {self.proc.pid}" if self.running and self.proc else "stopped"
        return f"<Daemon {self.name} {self.endpoint} {state} data={self.data_dir}>"


# ------------------------------------------------------------------ clients
def s3_client(daemon: Daemon, credentials: Credentials | None = None, **config: object):
    """A boto3 S3 client for ``daemon``: path-style, us-east-1, SDK-default checksums.

    No retries: a retried request would hide a 500 or a dropped connection.
    """
    import boto3
    from botocore.config import Config

    creds = credentials or daemon.credentials
    cfg = Config(
        region_name=REGION,
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=10,
        read_timeout=300,
        **config,  # type: ignore[arg-type]
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=daemon.endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        region_name=REGION,
        config=cfg,
    )


class AwsCli:
    """Runs the venv's ``aws`` against one endpoint, never reading ``~/.aws``."""

    def __init__(self, endpoint: str, credentials: Credentials, home: Path) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file = self.home / "aws-config"
        self.config_file.touch()

    def env(self) -> dict[str, str]:
        return clean_env(
            {
                "HOME": str(self.home),
                "AWS_ACCESS_KEY_ID": self.credentials.access_key,
                "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_CONFIG_FILE": str(self.config_file),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.config_file),
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_PAGER": "",
            }
        )

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(AWS), *args, "--endpoint-url", self.endpoint]
        proc = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`aws {' '.join(args)}` exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc
