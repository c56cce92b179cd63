"""The one place that builds concrete clients, adapters and the engine from the settings."""

from __future__ import annotations

import sys
from datetime import timedelta

import httpx
from sqlalchemy import Engine, create_engine

from syncd.config import ConfigError, Settings
from syncd.connect.client import ConnectClient
from syncd.crm.hubspot import HubSpotAdapter
from syncd.crm.port import CrmPort
from syncd.crm.salesforce import SalesforceAdapter
from syncd.domain.mapping import Mapping, MappingError, check_against, mapping_from_toml
from syncd.retry import RetryBudget, RetryPolicy
from syncd.sync.pull import PullOptions


def engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url_value,
        pool_pre_ping=True,
        pool_size=4,
        max_overflow=2,
        hide_parameters=True,
    )


def retry_budget(settings: Settings) -> RetryBudget:
    """One budget for the retries of a run, to share between the Connect client and the CRM
    adapter (`run_cycle` resets it as each run starts). `retry_budget` 0 makes it unlimited: it
    then only counts the run's retries."""
    return RetryBudget(settings.retry_budget or sys.maxsize)


def retry_policy(settings: Settings, budget: RetryBudget | None = None) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.retry_attempts, max_seconds=settings.retry_max_seconds, budget=budget
    )


def connect_client(settings: Settings, *, budget: RetryBudget | None = None) -> ConnectClient:
    settings.require("connect_api_key")
    assert settings.connect_api_key is not None
    return ConnectClient(
        settings.connect_url,
        settings.connect_api_key.get_secret_value(),
        timeout=settings.http_timeout,
        page_size=settings.page_size,
        retry=retry_policy(settings, budget),
    )


def pull_options(settings: Settings) -> PullOptions:
    return PullOptions(
        page_size=settings.page_size,
        overlap=timedelta(seconds=settings.overlap_window),
        product_ttl=timedelta(seconds=settings.product_ttl),
        concurrency=settings.pull_concurrency,
    )


def mapping(settings: Settings) -> Mapping:
    """The field mapping: the CRM's default with the TOML `[mapping]` overrides."""
    try:
        return mapping_from_toml(settings.crm, settings.mapping)
    except MappingError as exc:
        raise ConfigError(str(exc)) from None


def crm(settings: Settings, fields: Mapping, *, budget: RetryBudget | None = None) -> CrmPort:
    """The configured CRM adapter, reading and writing the properties `fields` maps."""
    account = [f.target for f in fields.account]
    contact = [f.target for f in fields.contact]
    if settings.crm == "hubspot":
        settings.require("hubspot_token")
        assert settings.hubspot_token is not None
        return HubSpotAdapter(
            settings.hubspot_url,
            settings.hubspot_token.get_secret_value(),
            timeout=settings.http_timeout,
            retry=retry_policy(settings, budget),
            company_fields=account,
            contact_fields=contact,
            key_property=fields.key_property,
            contact_key=fields.contact_key_property,
        )
    settings.require("salesforce_url", "salesforce_token")
    assert settings.salesforce_url is not None
    assert settings.salesforce_token is not None
    refresh = settings.salesforce_refresh_token
    secret = settings.salesforce_client_secret
    return SalesforceAdapter(
        settings.salesforce_url,
        settings.salesforce_token.get_secret_value(),
        api_version=settings.salesforce_api_version,
        account_fields=account,
        contact_fields=contact,
        refresh_token=refresh.get_secret_value() if refresh else None,
        client_id=settings.salesforce_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        retry=retry_policy(settings, budget),
        timeout=settings.http_timeout,
    )


def http_clients(
    connect: ConnectClient, adapter: CrmPort | None = None
) -> list[tuple[str, httpx.Client]]:
    """The httpx clients to instrument, by system (`connect`, `hubspot`, `salesforce`)."""
    clients = [("connect", connect.httpx_client)]
    if isinstance(adapter, HubSpotAdapter | SalesforceAdapter):
        clients.append((adapter.name, adapter.httpx_client))
    return clients


def checked_crm(
    settings: Settings, fields: Mapping, *, budget: RetryBudget | None = None
) -> CrmPort:
    """The CRM adapter, after checking that the CRM has every mapped property (exit 2 if not)."""
    adapter = crm(settings, fields, budget=budget)
    missing = check_against(fields, adapter.properties(), adapter.contact_properties())
    if missing:
        raise ConfigError(
            f"mapping: the {settings.crm} CRM has no property {', '.join(missing)} "
            "(`syncd crm setup` creates syncd's own custom properties)"
        )
    return adapter
