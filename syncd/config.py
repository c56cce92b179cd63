"""The one typed settings object.

Values come from, highest priority first: `SYNCD_*` environment variables, secret files named by
`SYNCD_<SECRET>_FILE`, then the TOML file given with `--config` (keys are the setting names in
lower case, e.g. `interval = 60`, or `connect_api_key_file = "/run/secrets/connect"`).

Settings are loaded only by entrypoints (the CLI); nothing here runs at import time.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url

ENV_PREFIX = "SYNCD_"
SECRET_FIELDS = (
    "database_url",
    "connect_api_key",
    "hubspot_token",
    "salesforce_token",
    "salesforce_refresh_token",
    "salesforce_client_secret",
)


class ConfigError(Exception):
    """A missing or invalid setting; the message names it. The CLI exits with code 2."""


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _read_secret_file(path: str, setting: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None


class _SecretFilesSource(PydanticBaseSettingsSource):
    """Reads `SYNCD_<SECRET>_FILE` for every secret field."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            setting = env_name(name) + "_FILE"
            path = os.environ.get(setting)
            if path:
                values[name] = _read_secret_file(path, setting)
        return values


class Settings(BaseSettings):
    """Everything syncd can be told. Secrets are `SecretStr`: masked in every repr."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    database_url: SecretStr | None = None
    connect_url: str = "https://api.connect.cloudblue.com/public/v1"
    connect_api_key: SecretStr | None = None
    crm: Literal["hubspot", "salesforce"] = "hubspot"
    hubspot_url: str = "https://api.hubapi.com"
    hubspot_token: SecretStr | None = None
    salesforce_url: str | None = None
    salesforce_token: SecretStr | None = None
    salesforce_refresh_token: SecretStr | None = None
    """With the client id and secret: refresh an expired access token once (OAuth refresh flow)."""
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_api_version: str = "62.0"
    mapping: dict[str, Any] = Field(default_factory=dict)
    """The `[mapping]` table of the TOML file: overrides of the default field mapping."""

    interval: float = Field(default=300, gt=0)
    reconcile_interval: float = Field(default=86_400, gt=0)
    sync_default: Literal["on", "off"] = "off"
    disabled_tar_policy: Literal["leave", "ignore"] = "leave"
    http_addr: str = "127.0.0.1:9108"
    shutdown_grace: float = Field(default=30, ge=0)

    page_size: int = Field(default=1000, ge=1, le=10_000)
    """`limit` asked of Connect; the server may clamp it, which paging copes with."""
    overlap_window: float = Field(default=600, ge=0)
    """Seconds the TAR feed re-reads behind its watermark, for late-committed records."""
    product_ttl: float = Field(default=3600, ge=0)
    """Seconds a product's sync capability is trusted before it is read again."""
    pull_concurrency: int = Field(default=4, ge=1, le=32)
    """Pages of one Connect listing fetched at once once its first page gave the total."""
    writeback_concurrency: int = Field(default=8, ge=1, le=64)
    """Accept / ignore requests in flight at once (Connect has no batch endpoint for them)."""
    http_timeout: float = Field(default=30, gt=0)
    retry_attempts: int = Field(default=6, ge=1)
    retry_max_seconds: float = Field(default=120, gt=0)
    retry_budget: int = Field(default=500, ge=0)
    """Retries one run may spend in all, Connect and the CRM together (429s, 5xx, timeouts);
    once spent, a retriable failure is final for the rest of the run and its records wait for
    the next one. 0: unlimited (only the per-request bounds above; retries are still counted)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        try:
            url = make_url(value.get_secret_value())
        except Exception:  # noqa: BLE001 - SQLAlchemy raises several types; the value is secret
            raise ValueError("not a valid SQLAlchemy URL") from None
        if url.get_backend_name() != "postgresql":
            raise ValueError("must be a postgresql URL, e.g. postgresql+psycopg://host/db")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return env_settings, _SecretFilesSource(settings_cls), init_settings

    def require(self, *fields: str) -> None:
        """Stop with a ConfigError naming the first of `fields` that is not set."""
        for name in fields:
            if getattr(self, name) in (None, ""):
                raise ConfigError(f"{env_name(name)} is not set (needed by this command)")

    @property
    def database_url_value(self) -> str:
        self.require("database_url")
        assert self.database_url is not None
        return self.database_url.get_secret_value()

    @property
    def database_url_masked(self) -> str:
        """The database URL with its password hidden, safe for logs and messages."""
        if self.database_url is None:
            return "(not set)"
        return make_url(self.database_url.get_secret_value()).render_as_string(hide_password=True)


def _toml_values(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config: {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key.endswith("_file") and key.removesuffix("_file") in SECRET_FIELDS:
            name = key.removesuffix("_file")
            values[name] = _read_secret_file(str(value), f"{key} in {path}")
        else:
            values[key] = value
    return values


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError naming the first bad setting."""
    values: dict[str, Any] = _toml_values(config) if config else {}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    messages = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "?"
        reason = error["msg"]
        if error["type"] == "extra_forbidden":
            reason = "unknown setting"
        messages.append(f"{env_name(field)}: {reason}")
    return "; ".join(messages)
