"""``titanctl info`` against a real daemon: EC 4+2 and the six drives, as a table and as JSON."""

from __future__ import annotations

import json
import subprocess

from .cluster import ROOT, TITANCTL, Credentials, Daemon, clean_env, free_port


def titanctl(
    *args: str, endpoint: str, credentials: Credentials = ROOT
) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        {
            "TITANS3_ENDPOINT": endpoint,
            "TITANS3_ROOT_ACCESS_KEY": credentials.access_key,
            "TITANS3_ROOT_SECRET_KEY": credentials.secret_key,
        }
    )
    return subprocess.run(
        [str(TITANCTL), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_info_json_lists_drives_and_ec_4_2(module_daemon: Daemon) -> None:
    r = titanctl("info", "--json", endpoint=module_daemon.endpoint)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["ec"] == {"k": 4, "m": 2}
    assert isinstance(info["host"], str) and info["host"]
    assert isinstance(info["version"], str) and info["version"]
    drives = info["drives"]
    assert len(drives) == 6
    paths = sorted(d["path"] for d in drives)
    want = sorted(str(module_daemon.drive_dir(i)) for i in range(6))
    assert [p.rstrip("/") for p in paths] == want, paths
    assert len({d["drive_id"] for d in drives}) == 6, "drive ids must be distinct"
    for d in drives:
        assert isinstance(d["state"], str) and d["state"] not in ("failed", "offline", "missing"), d
        assert d["capacity"] > 0 and 0 <= d["used"] <= d["capacity"], d
        assert 0 <= d["free"] <= d["capacity"], d
        assert d["errors"] == 0, d


def test_info_table_shows_ec_and_every_drive(module_daemon: Daemon) -> None:
    r = titanctl("info", endpoint=module_daemon.endpoint)
    assert r.returncode == 0, r.stderr
    assert "4+2" in r.stdout
    for i in range(6):
        line = next(
            (ln for ln in r.stdout.splitlines() if str(module_daemon.drive_dir(i)) in ln), ""
        )
        assert line, f"drive-{i} missing from:\n{r.stdout}"
        assert "iB" in line, f"capacity/used not human-readable: {line!r}"
    assert r.stderr == ""


def test_info_with_wrong_secret_is_one_line_exit_1(module_daemon: Daemon) -> None:
    wrong = Credentials(ROOT.access_key, "wrong-secret-" + "x" * 27)
    r = titanctl("info", endpoint=module_daemon.endpoint, credentials=wrong)
    assert r.returncode == 1
    assert r.stderr.startswith("titanctl: SignatureDoesNotMatch"), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_info_against_nothing_listening_is_exit_2() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    r = titanctl("info", endpoint=endpoint)
    assert r.returncode == 2
    assert r.stderr == f"titanctl: cannot reach {endpoint}: connection refused\n"


def test_object_inspect_of_a_missing_key_says_so_and_exits_1(module_daemon: Daemon) -> None:
    from .cluster import s3_client

    client = s3_client(module_daemon)
    client.create_bucket(Bucket="inspect-missing")
    client.put_object(Bucket="inspect-missing", Key="here", Body=b"x")
    client.close()
    here = titanctl("object", "inspect", "inspect-missing", "here", endpoint=module_daemon.endpoint)
    assert here.returncode == 0 and "health:   healthy" in here.stdout
    gone = titanctl("object", "inspect", "inspect-missing", "not-here",
                    endpoint=module_daemon.endpoint)
    assert gone.returncode == 1
    assert gone.stderr.strip() == "titanctl: no such key: inspect-missing/not-here"
    assert "DEGRADED" not in gone.stdout
