"""``titanctl kms`` / ``titanctl lifecycle`` formatting (pure) and argument parsing."""

from __future__ import annotations

from titans3.cli import ctl_dataprot
from titans3.cli.titanctl import build_parser


def test_key_table_shows_state_versions_and_never_material() -> None:
    doc = {"keys": [
        {"key_id": "k1", "arn": "arn:aws:kms:us-east-1:000000000000:key/k1", "enabled": True,
         "created_ns": 0, "versions": 2, "rotated_ns": 1_700_000_000 * 10**9, "description": "backups"},
        {"key_id": "k2", "arn": "a", "enabled": False, "created_ns": 0, "versions": 1,
         "rotated_ns": 0, "description": ""}]}
    text = ctl_dataprot.format_keys(doc)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["KEY", "STATE", "VERSIONS"]
    assert "k1" in lines[1] and "enabled" in lines[1] and "2023-11-14" in lines[1]
    assert "DISABLED" in lines[2]
    assert ctl_dataprot.format_keys({"keys": []}) == "no keys"


def test_lifecycle_status_names_every_counter() -> None:
    text = ctl_dataprot.format_lifecycle({"lifecycle": {
        "state": "scanning", "passes": 3, "bucket": "b", "buckets_scanned": 2, "objects_scanned": 9,
        "expired": 4, "noncurrent_expired": 1, "markers_removed": 0, "uploads_aborted": 2,
        "locked_kept": 5, "errors": 0, "last_error": "", "last_pass_ns": 0, "day_seconds": 2.0}})
    assert "scanning, pass 3 (bucket b)" in text and "4 current, 1 noncurrent" in text
    assert "kept by object lock: 5" in text and "day = 2.0 s" in text


def test_commands_parse() -> None:
    p = build_parser()
    a = p.parse_args(["kms", "create", "--alias", "x"])
    assert (a.command, a.action, a.alias) == ("kms", "create", "x")
    a = p.parse_args(["kms", "disable", "alias/x", "--json"])
    assert (a.action, a.key, a.json) == ("disable", "alias/x", True)
    assert p.parse_args(["lifecycle", "status"]).action == "status"
