"""The README quick start works as written: start script, then the AWS CLI.

``scripts/start.sh`` runs setup and ``titans3 serve --data ./data`` on :9000;
the test moves it to a temp data dir and free 127.0.0.1 ports with the
TITANS3_* variables the script honours, and takes the root credentials from the
``AWS_ACCESS_KEY_ID=`` / ``AWS_SECRET_ACCESS_KEY=`` lines it prints -- exactly
what a person following the README would copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import HOST, LIVE, REPO, AwsCli, Daemon, MiB, free_port
from .rawhttp import sha256_file, write_random_file

START_SH = REPO / "scripts" / "start.sh"
README = REPO / "README.md"

pytestmark = pytest.mark.skipif(
    not START_SH.exists(), reason="scripts/start.sh does not exist yet (the lead writes it)"
)


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[Daemon]:
    s3_port, peer_port, web_port = free_port(), free_port(), free_port()
    data = tmp_path / "data"
    d = Daemon(
        data,
        tmp_path / "start-sh.log",
        credentials=None,  # generated and printed at first start
        command=["bash", str(START_SH)],
        env={
            "TITANS3_DATA": str(data),
            "TITANS3_LISTEN": f"{HOST}:{s3_port}",
            "TITANS3_PEER_LISTEN": f"{HOST}:{peer_port}",
            "TITANS3_WEB_LISTEN": f"{HOST}:{web_port}",
            "TITANS3_SETUP_QUICK": "1",
        },
        ports=(s3_port, peer_port, web_port),
        cwd=REPO,
        signal_group=True,  # the script may not exec; SIGTERM the whole group
        start_timeout=600,  # setup may have to install packages
        name="start.sh",
    )
    LIVE.append(d)
    try:
        d.start()
        yield d
    finally:
        try:
            d.stop()
        finally:
            LIVE.remove(d)


def test_readme_names_the_start_script() -> None:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    assert "scripts/start.sh" in README.read_text(), (
        "README quick start should run scripts/start.sh"
    )


def test_quickstart_aws_cli_round_trip(quickstart: Daemon, tmp_path: Path) -> None:
    d = quickstart
    assert (d.data_dir / "drive-0").is_dir(), "start.sh did not put the drives in TITANS3_DATA"
    aws = AwsCli(d.endpoint, d.credentials, tmp_path / "aws-home")

    files = {"small.bin": 8 * MiB, "big.bin": 300 * MiB}
    sums = {name: write_random_file(tmp_path / name, size) for name, size in files.items()}

    aws("s3", "mb", "s3://quickstart")
    assert "quickstart" in aws("s3", "ls").stdout

    for name in files:
        aws("s3", "cp", str(tmp_path / name), f"s3://quickstart/{name}")

    listing = aws("s3", "ls", "s3://quickstart/").stdout
    for name, size in files.items():
        line = next((ln for ln in listing.splitlines() if ln.endswith(" " + name)), None)
        assert line is not None, f"{name} missing from `aws s3 ls`:\n{listing}"
        assert str(size) in line.split(), f"wrong size listed for {name}: {line!r}"

    for name in files:
        down = tmp_path / f"down-{name}"
        aws("s3", "cp", f"s3://quickstart/{name}", str(down))
        assert down.stat().st_size == files[name]
        assert sha256_file(down) == sums[name], f"{name} came back different"

    aws("s3", "rm", "s3://quickstart/big.bin")
    listing = aws("s3", "ls", "s3://quickstart/").stdout
    assert "big.bin" not in listing
    assert "small.bin" in listing

    # The removed object is gone for a direct fetch too.
    gone = aws("s3", "cp", "s3://quickstart/big.bin", str(tmp_path / "gone.bin"), check=False)
    assert gone.returncode != 0
    assert "404" in gone.stderr or "Not Found" in gone.stderr or "NoSuchKey" in gone.stderr


def test_start_sh_prints_export_lines_that_work_when_pasted(quickstart: Daemon, tmp_path: Path) -> None:
    """What start.sh prints is pasted into a fresh shell as is: then the AWS CLI
    and titanctl work with no other flags (this port is not the default, so
    TITANS3_ENDPOINT must be among the lines)."""
    import re
    import subprocess

    from .cluster import REPO, clean_env

    exports = re.findall(r"^export .*$", quickstart.log_text(), re.MULTILINE)
    names = {line.split()[1].split("=")[0] for line in exports}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "TITANS3_ENDPOINT"} <= names
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env({"HOME": str(home), "AWS_CONFIG_FILE": str(home / "none"),
                     "AWS_SHARED_CREDENTIALS_FILE": str(home / "none")})  # fmt: skip
    script = "\n".join([*exports, "set -e", f"{REPO}/.venv/bin/aws s3 mb s3://pasted",
                        f"{REPO}/.venv/bin/aws s3 ls", f"{REPO}/.venv/bin/titanctl info"])  # fmt: skip
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "make_bucket: pasted" in proc.stdout and "erasure:  4+2" in proc.stdout
