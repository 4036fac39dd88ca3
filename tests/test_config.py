"""Configuration: defaults, TOML, environment overrides, strict parsing, documentation."""

from pathlib import Path

import pytest

from kiosk import config as config_mod
from kiosk.errors import ConfigError

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    missing = [s.name for s in config_mod.SETTINGS if f"`{s.name}`" not in text]
    assert missing == []


def test_an_empty_configuration_has_every_default():
    cfg = config_mod.load(None, env={})
    assert cfg.storage.min_free_percent == 10.0
    assert cfg["web.port"] == 8080
    assert cfg.centre.url == ""


def test_the_file_sets_keys_and_the_environment_overrides_them(cfg_path):
    cfg = config_mod.load(cfg_path, env={"KIOSK_WEB_PORT": "9001", "KIOSK_POINT_NAME": "东风村"})
    assert cfg.web.port == 9001
    assert cfg.point.name == "东风村"
    assert cfg.point.id == "test-point"


def test_kiosk_config_names_the_file_when_no_path_is_given(cfg_path):
    assert config_mod.load(None, env={"KIOSK_CONFIG": str(cfg_path)}).point.id == "test-point"


@pytest.mark.parametrize(
    "env",
    [{"KIOSK_WEB_PORT": "eighty"}, {"KIOSK_WEB_PORT": "70000"}, {"KIOSK_HARDWARE_BACKEND": "arduino"},
     {"KIOSK_SYNC_ENABLED": "maybe"}, {"KIOSK_CENTRE_URL": "ftp://x"}],
)
def test_a_bad_override_stops_with_a_message_naming_it(env):
    with pytest.raises(ConfigError) as e:
        config_mod.load(None, env=env)
    assert next(iter(env)).split("_", 2)[2].lower().split("_")[0] in str(e.value).lower()


def test_an_unknown_key_in_the_file_is_refused(tmp_path):
    p = tmp_path / "k.toml"
    p.write_text("[web]\nprot = 80\n")
    with pytest.raises(ConfigError, match="unknown setting web.prot"):
        config_mod.load(p, env={})


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    p = tmp_path / "k.toml"
    p.write_text("[web\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(p, env={})


def test_configuration_is_read_only(cfg):
    with pytest.raises(AttributeError):
        cfg.web.port = 1
    assert cfg.replace(web__port=1).web.port == 1
    assert cfg.web.port != 1


def test_empty_paths_are_derived_from_the_data_folder(cfg):
    assert cfg.path("storage.spool_dir") == cfg.data_dir / "spool"
    assert cfg.path("storage.trust_dir") == cfg.data_dir / "trust"
