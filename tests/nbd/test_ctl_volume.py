"""``titanctl volume``: sizes as qemu-img reads them, and the tables."""

from __future__ import annotations

import pytest

from titans3.cli.ctl_volume import format_info, format_volumes, parse_size
from titans3.cli.titanctl import CtlError
from titans3.core.config import load
from titans3.core.errors import ConfigError


@pytest.mark.parametrize("text,want", [
    ("4096", 4096), ("100G", 100 << 30), ("512M", 512 << 20), ("512MiB", 512 << 20), ("1.5T", 3 << 39),
    ("64k", 64 << 10), ("2 GiB", 2 << 30), ("10b", 10),
])
def test_sizes_use_powers_of_1024(text: str, want: int) -> None:
    assert parse_size(text) == want


@pytest.mark.parametrize("text", ["", "G", "1.5", "-1G", "10X", "1.3K"])
def test_bad_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(CtlError) as e:
        parse_size(text)
    assert e.value.code == 2


def test_the_volume_table_shows_what_operators_look_for() -> None:
    out = format_volumes({"volumes": [
        {"name": "db", "size": 10 << 30, "allocated": 3 << 20, "attached": "h1 (peer 10.0.0.1:9100)",
         "here": True, "snapshots": 2, "parent": "", "ops_per_s": 123.4},
        {"name": "c", "size": 1 << 30, "allocated": 0, "attached": "", "here": False, "snapshots": 0,
         "parent": "db@s1", "ops_per_s": 0}]})
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "ALLOCATED", "ATTACHED", "SNAPSHOTS", "PARENT", "OPS/S"]
    assert "10.0 GiB" in lines[1] and "3.0 MiB" in lines[1] and "123" in lines[1]
    assert "db@s1" in lines[2] and lines[2].rstrip().endswith("-")
    assert format_volumes({"volumes": []}) == "no volumes"
    info = format_info({"name": "db", "id": "ab", "size": 1 << 30, "extent_size": 4 << 20, "allocated": 0,
                        "attached": "", "snapshots": [{"name": "s1", "created_ns": 1}], "clones": ["c"]})
    assert "snapshots" not in info.lower().split("\n")[0] and "s1" in info and "clones:     c" in info


def test_plain_nbd_beyond_loopback_needs_tls() -> None:
    with pytest.raises(ConfigError, match="nbd_listen"):
        load(flags={"nbd_listen": "10.1.2.3:10809"}, environ={})
    assert load(flags={"nbd_listen": "127.0.0.1:10809"}, environ={}).nbd_listen == "127.0.0.1:10809"
    assert load(flags={"nbd_listen": ""}, environ={}).nbd_listen == ""
