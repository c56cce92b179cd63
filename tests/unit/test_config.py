"""Settings: where values come from, how errors name the setting, and that secrets stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import ConfigError, load_settings

SECRET = "SU-123-456-789:very-secret-value"


def test_environment_variables_with_the_syncd_prefix_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SYNCD_INTERVAL", "60")
    monkeypatch.setenv("SYNCD_CRM", "salesforce")
    settings = load_settings()
    assert settings.interval == 60
    assert settings.crm == "salesforce"


def test_the_toml_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('interval = 90\nsync_default = "on"\n[mapping.account]\nname = "name"\n')
    monkeypatch.setenv("SYNCD_INTERVAL", "15")
    settings = load_settings(config)
    assert settings.interval == 15
    assert settings.sync_default == "on"
    assert settings.mapping == {"account": {"name": "name"}}


def test_a_secret_can_come_from_a_file_named_by_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("SYNCD_CONNECT_API_KEY_FILE", str(secret_file))
    settings = load_settings()
    assert settings.connect_api_key is not None
    assert settings.connect_api_key.get_secret_value() == SECRET


def test_a_secret_file_can_be_named_in_the_toml_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("pat-na1-abc")
    config = tmp_path / "syncd.toml"
    config.write_text(f'hubspot_token_file = "{secret_file}"\n')
    settings = load_settings(config)
    assert settings.hubspot_token is not None
    assert settings.hubspot_token.get_secret_value() == "pat-na1-abc"


def test_an_unreadable_secret_file_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_CONNECT_API_KEY_FILE", "/nonexistent/key")
    with pytest.raises(ConfigError, match="SYNCD_CONNECT_API_KEY_FILE: cannot read"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SYNCD_INTERVAL", "soon", "SYNCD_INTERVAL"),
        ("SYNCD_CRM", "pipedrive", "SYNCD_CRM"),
        ("SYNCD_SYNC_DEFAULT", "maybe", "SYNCD_SYNC_DEFAULT"),
        (
            "SYNCD_DATABASE_URL",
            "mysql://x/y",
            "SYNCD_DATABASE_URL: Value error, must be a postgresql",
        ),
    ],
)
def test_an_invalid_setting_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_an_unknown_key_in_the_toml_file_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text("intervall = 3\n")
    with pytest.raises(ConfigError, match="SYNCD_INTERVALL: unknown setting"):
        load_settings(config)


def test_a_setting_a_command_needs_is_named_when_missing() -> None:
    with pytest.raises(ConfigError, match="SYNCD_CONNECT_API_KEY is not set"):
        load_settings().require("connect_api_key")


def test_secrets_never_show_in_reprs_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_CONNECT_API_KEY", SECRET)
    monkeypatch.setenv("SYNCD_DATABASE_URL", "postgresql+psycopg://syncd:db-password@db/syncd")
    settings = load_settings()
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert SECRET not in text
        assert "db-password" not in text
    assert settings.database_url_masked == "postgresql+psycopg://syncd:***@db/syncd"
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"mysql://u:{SECRET}@h/d")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert SECRET not in str(caught.value)
