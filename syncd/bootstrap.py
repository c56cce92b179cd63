"""The one place that builds concrete clients, adapters and the engine from the settings."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, create_engine

from syncd.config import Settings
from syncd.connect.client import ConnectClient
from syncd.retry import RetryPolicy
from syncd.sync.pull import PullOptions


def engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url_value,
        pool_pre_ping=True,
        pool_size=4,
        max_overflow=2,
        hide_parameters=True,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(attempts=settings.retry_attempts, max_seconds=settings.retry_max_seconds)


def connect_client(settings: Settings) -> ConnectClient:
    settings.require("connect_api_key")
    assert settings.connect_api_key is not None
    return ConnectClient(
        settings.connect_url,
        settings.connect_api_key.get_secret_value(),
        timeout=settings.http_timeout,
        page_size=settings.page_size,
        retry=retry_policy(settings),
    )


def pull_options(settings: Settings) -> PullOptions:
    return PullOptions(
        page_size=settings.page_size,
        overlap=timedelta(seconds=settings.overlap_window),
        product_ttl=timedelta(seconds=settings.product_ttl),
    )
