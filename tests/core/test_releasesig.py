"""Upgrade media signatures: a medium is applied only when a key the node trusts signed its manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from titans3.core import releasesig
from titans3.core.releasesig import PublicKey, SignatureRefused, public_key, sign, verify

MANIFEST = b"format=1\nversion=0.1.0-2\nboot_tries=2\nsha256_root.img=" + b"ab" * 32 + b"\n"


def test_a_manifest_signed_by_a_trusted_key_verifies_and_names_the_key():
    pem = releasesig.new_private_key()
    other = public_key(releasesig.new_private_key())
    key = verify(MANIFEST, sign(MANIFEST, pem), [other, public_key(pem)])
    assert key == public_key(pem)


def test_one_changed_byte_of_the_manifest_is_refused():
    pem = releasesig.new_private_key()
    sig = sign(MANIFEST, pem)
    with pytest.raises(SignatureRefused, match="altered"):
        verify(MANIFEST.replace(b"ab", b"ac", 1), sig, [public_key(pem)])


def test_a_manifest_signed_by_an_untrusted_key_is_refused_naming_both_keys():
    pem, trusted = releasesig.new_private_key(), public_key(releasesig.new_private_key())
    with pytest.raises(SignatureRefused, match=f"key {public_key(pem).key_id}.*trusted: {trusted.key_id}"):
        verify(MANIFEST, sign(MANIFEST, pem), [trusted])


def test_a_signature_moved_to_another_key_id_does_not_verify():
    pem, pem2 = releasesig.new_private_key(), releasesig.new_private_key()
    _, _, b64 = sign(MANIFEST, pem).split()
    forged = f"ed25519 {public_key(pem2).key_id} {b64}\n"
    with pytest.raises(SignatureRefused, match="altered"):
        verify(MANIFEST, forged, [public_key(pem), public_key(pem2)])


@pytest.mark.parametrize("line", ["", "rsa abc def", "ed25519 onlyid", "ed25519 id !!notbase64!!"])
def test_malformed_signature_lines_are_refused_not_crashed(line):
    pem = releasesig.new_private_key()
    key = public_key(pem)
    line = line.replace("id", key.key_id)
    with pytest.raises(SignatureRefused):
        verify(MANIFEST, line, [key])


def test_public_key_lines_round_trip_and_bad_ones_are_skipped(tmp_path):
    key = public_key(releasesig.new_private_key())
    assert PublicKey.parse(key.line()) == key
    (tmp_path / "good.pub").write_text(key.line())
    (tmp_path / "short.pub").write_text("ed25519 AAAA\n")
    (tmp_path / "notes.txt").write_text(key.line())  # only *.pub count
    assert releasesig.trusted_keys(tmp_path) == [key]
    assert releasesig.trusted_keys(tmp_path / "missing") == []


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "titans3.core.releasesig", *map(str, args)],
                          capture_output=True, text=True, check=False)


def test_the_command_line_signs_and_verifies_the_way_the_node_calls_it(tmp_path: Path):
    pem, keys, manifest = tmp_path / "k" / "release.pem", tmp_path / "keys", tmp_path / "manifest"
    assert run("keygen", pem).returncode == 0
    assert pem.stat().st_mode & 0o777 == 0o600
    first = pem.read_bytes()
    assert run("keygen", pem).returncode == 0 and pem.read_bytes() == first  # never replaced
    keys.mkdir()
    (keys / "release.pub").write_text(run("pubkey", pem).stdout)
    manifest.write_bytes(MANIFEST)

    unsigned = run("verify", keys, manifest)
    assert unsigned.returncode == 1 and "not signed" in unsigned.stderr

    assert run("sign", pem, manifest).returncode == 0
    ok = run("verify", keys, manifest)
    assert ok.returncode == 0 and public_key(first).key_id in ok.stdout

    manifest.write_bytes(MANIFEST + b"sha256_extra=00\n")
    bad = run("verify", keys, manifest)
    assert bad.returncode == 1 and "altered" in bad.stderr and "Traceback" not in bad.stderr
