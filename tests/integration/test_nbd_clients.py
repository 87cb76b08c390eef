"""NBD volumes through the clients people use: nbdinfo, nbdcopy, qemu-img, libnbd."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import cluster
from .nbdtools import NbdDaemon, libnbd, module_daemon, run, write_random

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(scope="module")
def nbd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NbdDaemon]:
    yield from module_daemon(tmp_path_factory, "nbd")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_nbdinfo_shows_the_size_block_sizes_and_base_allocation(nbd: NbdDaemon) -> None:
    nbd.create_volume("info", "64M")
    doc = json.loads(run(["nbdinfo", "--json", nbd.uri("info")]).stdout)
    (exp,) = doc["exports"]
    assert exp["export-size"] == 64 * MiB
    assert (exp["block_size_minimum"], exp["block_size_preferred"], exp["block_size_maximum"]) == (
        512, 4096, 32 * MiB)
    assert "base:allocation" in exp["contexts"]
    assert exp["can_flush"] and exp["can_fua"] and exp["can_trim"] and exp["can_zero"] and exp["can_fast_zero"]
    assert exp["can_multi_conn"] and not exp["is_read_only"]
    # A new volume is one hole: nothing allocated.
    assert run(["nbdinfo", "--map", nbd.uri("info")]).stdout.split() == ["0", str(64 * MiB), "3", "hole,zero"]


def test_nbdinfo_list_shows_every_volume_and_snapshot(nbd: NbdDaemon) -> None:
    nbd.create_volume("listed", "16M")
    nbd.titanctl("volume", "snapshot", "create", "listed", "first")
    doc = json.loads(run(["nbdinfo", "--list", "--json", f"nbd://{cluster.HOST}:{nbd.nbd_port}"]).stdout)
    names = {e["export-name"]: e for e in doc["exports"]}
    assert "listed" in names and "listed@first" in names
    assert names["listed@first"]["is_read_only"] and names["listed"]["export-size"] == 16 * MiB


def test_nbdcopy_of_a_1gib_random_image_in_and_out_is_identical(nbd: NbdDaemon, tmp_path: Path) -> None:
    nbd.create_volume("big", "1G")
    src, out = tmp_path / "src.img", tmp_path / "out.img"
    write_random(src, GiB, seed=11)
    run(["nbdcopy", "--flush", str(src), nbd.uri("big")])
    run(["nbdcopy", nbd.uri("big"), str(out)])
    assert sha256_of(out) == sha256_of(src)
    out.unlink()
    info = nbd.volume_json("info", "big")
    assert info["allocated"] == GiB and info["size"] == GiB


def test_qemu_img_convert_and_compare_against_the_volume(nbd: NbdDaemon, tmp_path: Path) -> None:
    nbd.create_volume("qemu", "96M")
    src = tmp_path / "src.img"
    write_random(src, 96 * MiB, seed=12)
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(src), nbd.uri("qemu")])
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(src), nbd.uri("qemu")])
    info = json.loads(run(["qemu-img", "info", "--output=json", nbd.uri("qemu")]).stdout)
    assert info["virtual-size"] == 96 * MiB
    # A changed byte is a difference qemu-img sees.
    with open(src, "r+b") as f:
        f.seek(50 * MiB)
        f.write(b"\xff")
    assert run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(src), nbd.uri("qemu")],
               check=False).returncode == 1


def test_a_sparse_image_stays_sparse(nbd: NbdDaemon, tmp_path: Path) -> None:
    nbd.create_volume("sparse", "512M")
    src = tmp_path / "sparse.img"
    with open(src, "wb") as f:
        f.truncate(512 * MiB)
        for off in (0, 100 * MiB + 12345, 511 * MiB):
            f.seek(off)
            f.write(b"data!" * 1000)
    run(["nbdcopy", "--flush", str(src), nbd.uri("sparse")])
    info = nbd.volume_json("info", "sparse")
    assert 0 < info["allocated"] <= 4 * 4 * MiB  # the extents holding data, nothing else
    mapping = run(["nbdinfo", "--map", nbd.uri("sparse")]).stdout
    holes = sum(int(line.split()[1]) for line in mapping.splitlines() if "hole" in line)
    assert holes >= 512 * MiB - 16 * MiB
    out = tmp_path / "back.img"
    run(["nbdcopy", nbd.uri("sparse"), str(out)])
    assert sha256_of(out) == sha256_of(src)


def test_libnbd_sees_structured_holes_fua_and_out_of_range_errors(nbd: NbdDaemon) -> None:
    nbd.create_volume("raw", "32M")
    res = libnbd("probe.py", nbd.uri("raw"))
    assert res.stdout.strip().splitlines()[-1] == "ok", res.stdout


def test_unknown_volumes_get_a_clear_error(nbd: NbdDaemon) -> None:
    res = run(["nbdinfo", nbd.uri("no-such-volume")], check=False, env_extra={"LIBNBD_DEBUG": "1"})
    assert res.returncode != 0 and "No such file" in res.stderr  # NBD_REP_ERR_UNKNOWN
    assert "server error message: no volume named 'no-such-volume'" in res.stderr


def test_garbage_on_the_socket_is_refused_and_the_gateway_keeps_serving(nbd: NbdDaemon) -> None:
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 4 + b"IHAVEOPT" + struct.pack(">II", 7, 0xFFFFFFF0),
                 b"\x00\x00\x00\x01" + b"IHAVEOPX" + bytes(8)):
        with socket.create_connection((cluster.HOST, nbd.nbd_port), timeout=10) as s:
            assert s.recv(18)[:8] == b"NBDMAGIC"
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):  # the server answers or hangs up; it never hangs
                pass
    nbd.create_volume("after", "8M")
    assert json.loads(run(["nbdinfo", "--json", nbd.uri("after")]).stdout)["exports"][0]["export-size"] == 8 * MiB


def test_a_client_resetting_its_connection_while_replies_go_out_ends_only_that_connection(nbd: NbdDaemon) -> None:
    """A raw client (no libnbd: it cannot reset on purpose) asks for 128 MiB of
    reads, takes the first bytes of the replies, and closes with a TCP RST
    while the gateway is still sending; the daemon serves the next client."""
    nbd.create_volume("reset", "64M")
    for _ in range(3):
        with socket.create_connection((cluster.HOST, nbd.nbd_port), timeout=30) as s:
            assert s.recv(18)[:8] == b"NBDMAGIC"
            s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
            s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, 5) + b"reset")  # NBD_OPT_EXPORT_NAME
            got = b""
            while len(got) < 10:  # export size (8) + transmission flags (2)
                got += s.recv(10 - len(got))
            assert struct.unpack(">Q", got[:8])[0] == 64 * MiB
            s.sendall(b"".join(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, (i % 16) * 4 * MiB, 4 * MiB)
                               for i in range(32)))  # READs: simple replies, zeroes on the wire
            while len(got) < 1 * MiB:
                got += s.recv(1 << 16)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    assert nbd.proc is not None and nbd.proc.poll() is None, "the daemon died"
    assert json.loads(run(["nbdinfo", "--json", nbd.uri("reset")]).stdout)["exports"][0]["export-size"] == 64 * MiB


def test_fio_random_writes_verify_through_its_nbd_engine(nbd: NbdDaemon, tmp_path: Path) -> None:
    nbd.create_volume("fio", "32M")
    res = run(["fio", "--name=v", "--ioengine=nbd", f"--uri={nbd.uri('fio')}", "--rw=randwrite", "--bs=4k",
               "--iodepth=16", "--size=32M", "--verify=crc32c", "--verify_fatal=1", "--fsync=64",
               "--do_verify=1", "--output-format=json"], timeout=300,
              cwd=tmp_path)  # fio leaves its verify state file in the working directory
    job = json.loads(res.stdout[res.stdout.index("{"):])["jobs"][0]
    assert job["error"] == 0 and job["write"]["total_ios"] == 8192
