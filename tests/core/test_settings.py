"""Configuration: TOML file, environment overrides, clear errors naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgbridge.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEGMENT_WRITE_KEY", "SEGMENT_REGION", "SEGMENT_ENDPOINT", "SENDGRID_WEBHOOK_PUBLIC_KEY",
                 "SGBRIDGE_DATABASE_URL", "SGBRIDGE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///sgbridge.db"
    assert settings.segment.base_url() == "https://api.segment.io"
    assert "deferred" not in settings.sources["default"].events


def test_short_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "wk")
    monkeypatch.setenv("SEGMENT_REGION", "EU")
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", "k1, k2")
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", "postgresql://db/x")
    settings = load_settings()
    assert settings.write_key_for("default") == "wk"
    assert settings.segment.base_url() == "https://events.eu1.segmentapis.com"
    assert settings.sources["default"].public_keys == ["k1", "k2"]
    assert settings.database_url == "postgresql://db/x"
    monkeypatch.setenv("SEGMENT_ENDPOINT", "http://127.0.0.1:9/")
    assert load_settings().segment.base_url() == "http://127.0.0.1:9"


def test_toml_file_with_named_sources_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sgbridge.toml"
    config.write_text('''
database_url = "sqlite:///from-file.db"
[segment]
write_key = "file-key"
[sources.default]
public_keys = ["abc"]
[sources.eu_account]
public_keys = ["def"]
segment_write_key = "eu-key"
events = ["processed", "drop", "machine_opened", "spam_report"]
user_id_arg = "user_id"
''')
    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", "sqlite:///from-env.db")
    settings = load_settings(config)
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.write_key_for("default") == "file-key"
    assert settings.write_key_for("eu_account") == "eu-key"
    assert settings.sources["eu_account"].events == ["processed", "dropped", "machine_open", "spamreport"]


@pytest.mark.parametrize(("toml", "key"), [
    ('[segment]\nregion = "mars"', "segment.region"),
    ('[segment]\nwrite_kye = "typo"', "segment.write_kye"),
    ('[sources.default]\nevents = ["opened"]', "sources.default.events"),
    ("[delivery]\nconcurrency = 0", "delivery.concurrency"),
    ("unknown_top = 1", "unknown_top"),
])
def test_errors_name_the_bad_key(tmp_path: Path, toml: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert key in str(err.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[segment\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_secrets_are_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "super-secret-write-key")
    assert "super-secret-write-key" not in repr(load_settings())
