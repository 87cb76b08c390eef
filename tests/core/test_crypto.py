import pytest

from titans3.core.credentials import load_root_credentials
from titans3.core.crypto import hash_password, seal, unseal, verify_password
from titans3.core.errors import ConfigError


def test_seal_round_trips_and_binds_purpose():
    key = b"k" * 32
    s = seal(key, b"secret", "root")
    assert unseal(key, s, "root") == b"secret"
    with pytest.raises(ConfigError):
        unseal(key, s, "other")
    with pytest.raises(ConfigError):
        unseal(b"x" * 32, s, "root")


def test_generated_credentials_are_stored_sealed_and_stable(tmp_path):
    first = load_root_credentials(tmp_path)
    assert first.generated
    raw = (tmp_path / "root-credentials.json").read_text()
    assert first.root_secret_key not in raw
    again = load_root_credentials(tmp_path)
    assert (again.root_access_key, again.root_secret_key) == (first.root_access_key, first.root_secret_key)
    assert not again.generated
    assert oct((tmp_path / "master.key").stat().st_mode)[-3:] == "600"


def test_environment_credentials_win(tmp_path):
    c = load_root_credentials(tmp_path, "AK", "SECRETKEY")
    assert c.get_secret("AK") == "SECRETKEY" and c.get_secret("other") is None


def test_passwords_hash_with_argon2id():
    h = hash_password("pw")
    assert h.startswith("$argon2id$") and verify_password(h, "pw") and not verify_password(h, "no")
