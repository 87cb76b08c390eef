import pytest

from titans3.core.config import load
from titans3.core.errors import ConfigError


def test_defaults_need_no_file_or_environment():
    cfg = load(environ={})
    assert cfg.drives == 6 and cfg.listen == "0.0.0.0:9000" and cfg.web_listen == "127.0.0.1:9001"


def test_later_sources_win(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('drives = 4\nlisten = "127.0.0.1:1"\nregion = "eu-1"\n')
    cfg = load(environ={"TITANS3_LISTEN": "127.0.0.1:2", "TITANS3_DRIVES": "8"},
               config_file=str(f), flags={"drives": 5})
    assert (cfg.drives, cfg.listen, cfg.region) == (5, "127.0.0.1:2", "eu-1")


def test_bad_value_names_the_key_and_source():
    with pytest.raises(ConfigError, match="drives.*TITANS3_DRIVES"):
        load(environ={"TITANS3_DRIVES": "six"})


def test_unknown_file_key_is_rejected(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("drivez = 3\n")
    with pytest.raises(ConfigError, match="drivez"):
        load(environ={}, config_file=str(f))


def test_bad_listen_address_is_rejected():
    with pytest.raises(ConfigError, match="listen"):
        load(environ={}, flags={"listen": "nowhere"})


def test_ec_must_fit_the_drives():
    with pytest.raises(ConfigError, match="ec"):
        load(environ={}, flags={"drives": 4, "ec": "4+2"})


def test_storage_classes_parse_and_must_fit_the_placement():
    cfg = load(environ={"TITANS3_STORAGE_CLASSES": "STANDARD_IA=2+2, GLACIER_IR=3+3"}, flags={})
    from titans3.core import storageclass

    assert storageclass.parse(cfg.storage_classes) == {"STANDARD_IA": (2, 2), "GLACIER_IR": (3, 3)}
    for bad, why in [("STANDARD_IA=4+4", "needs 8 drives"), ("STANDARD=2+2", "STANDARD"),
                     ("FAST=2+2", "storage class"), ("STANDARD_IA=2+0", "m >= 1"),
                     ("STANDARD_IA=2+2,STANDARD_IA=3+3", "twice"), ("STANDARD_IA=x", "K\\+M")]:
        with pytest.raises(ConfigError, match=why):
            load(environ={"TITANS3_STORAGE_CLASSES": bad}, flags={})
    with pytest.raises(ConfigError, match="needs 6 drives"):  # the placement is ec's width
        load(environ={"TITANS3_STORAGE_CLASSES": "STANDARD_IA=3+3"}, flags={"ec": "3+2"})


def test_write_memory_budget_and_body_queue_are_validated():
    cfg = load(environ={"TITANS3_WRITE_MEMORY_MB": "64"})
    assert cfg.write_memory_mb == 64 and cfg.http_body_queue == 2
    with pytest.raises(ConfigError, match="write_memory_mb"):
        load(environ={"TITANS3_WRITE_MEMORY_MB": "-1"})
    # a queue of 1 hangs bodyless requests (docs/architecture.md "Write memory budget")
    with pytest.raises(ConfigError, match="http_body_queue"):
        load(environ={"TITANS3_HTTP_BODY_QUEUE": "1"})
