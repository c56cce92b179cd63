"""A local HubSpot CRM: companies, contacts, their association, with HubSpot's quirks and limits.

Serve it with `SimServer(HubSpotSim(token="t")).start()` or `syncd sim hubspot --port N --token T`.
On top of the object endpoints (`hubspot_objects`) it adds bearer-token auth (401 with HubSpot's
body), rate limits (`hubspot_limits`: 429 bodies and `X-HubSpot-RateLimit-*` headers), the v4
contact ↔ company association endpoints (`hubspot_associations`), and test hooks that act as a CRM
user would (edits, bulk edits that stamp one millisecond on many records, emails HubSpot refuses).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

from syncd.sim.base import Request, Response, SimServer
from syncd.sim.hubspot_associations import HubSpotAssociations
from syncd.sim.hubspot_limits import RateLimiter, RateLimits
from syncd.sim.hubspot_shapes import error_body
from syncd.sim.hubspot_store import PropertyDef, SimObject

__all__ = ["HubSpotSim", "RateLimits", "add_arguments", "build", "serve"]

KEY_PROPERTY = "connect_account_id"
TAX_PROPERTY = "connect_tax_id"
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


class HubSpotSim(HubSpotAssociations):
    """The simulated portal. `token=None` accepts any bearer token; `limits=None` turns the rate
    limits off; `search_lag` delays when writes become visible to search; `clock` (epoch seconds)
    drives timestamps, rate windows and the lag."""

    def __init__(
        self,
        token: str | None = "test-token",  # noqa: S107 - the simulator's default test token
        *,
        limits: RateLimits | None = RateLimits(),  # noqa: B008 - frozen value
        search_lag: float = 0.0,
        clock: Callable[[], float] = time.time,
        custom_properties: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(search_lag=search_lag, clock=clock, seed=seed)
        self.token = token
        self.limiter = RateLimiter(limits) if limits is not None else None
        if custom_properties:
            self.install_custom_properties()

    # --- auth and limits -----------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token or self.token not in (None, token):
            return Response(401, error_body(AUTH_MESSAGE, "INVALID_AUTHENTICATION"))
        if self.limiter is None:
            return None
        with self.lock:
            return self.limiter.admit(_is_search(request), self.clock())

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        # Search answers carry no rate-limit headers (HubSpot changelog; crm-apis.md §2.2).
        if self.limiter is not None and response.status != 401 and not _is_search(request):
            with self.lock:
                for name, value in self.limiter.headers(self.clock()).items():
                    response.headers.setdefault(name, value)
        return response

    # --- test hooks ----------------------------------------------------------------------

    def install_custom_properties(self) -> None:
        """What `syncd crm setup` creates: the unique TA id and the tax id on companies."""
        now = self.now_ms()
        with self.lock:
            for name, label, unique in (
                (KEY_PROPERTY, "Connect account id", True),
                (TAX_PROPERTY, "Connect tax id", False),
            ):
                if name not in self.companies.properties:
                    prop = PropertyDef(name, label, group="companyinformation", unique=unique)
                    prop.created_ms = now
                    self.companies.add_property(prop)

    def company(self, key: str) -> SimObject | None:
        """The company whose `connect_account_id` is `key`."""
        return self.companies.find(KEY_PROPERTY, key)

    def contact(self, email: str) -> SimObject | None:
        return self.contacts.find("email", email)

    def company_contacts(self, company: SimObject) -> list[SimObject]:
        ids = self.associations.contacts_of(company.id)
        return [self.contacts.records[i] for i in ids]

    def edit_company(self, key: str, **props: str) -> SimObject:
        """A CRM user's edit of the company `key`: writes `props`, bumps the modified date."""
        with self.lock:
            obj = self.company(key)
            if obj is None:
                raise KeyError(key)
            self.companies.update(obj, props, self.now_ms())
            return obj

    def edit_contact(self, email: str, **props: str) -> SimObject:
        with self.lock:
            obj = self.contact(email)
            if obj is None:
                raise KeyError(email)
            self.contacts.update(obj, props, self.now_ms())
            return obj

    def seed_companies(self, keys: Iterable[str], at: int | None = None, **props: str) -> int:
        """Create companies keyed by TA id without HTTP (for volume tests); `at` stamps their
        create and modified dates (epoch ms). Returns how many were created."""
        self.install_custom_properties()
        now = self.now_ms() if at is None else at
        with self.lock:
            count = 0
            for key in keys:
                self.companies.create({KEY_PROPERTY: key, "name": key, **props}, now)
                count += 1
            return count

    def bulk_touch(
        self, n: int | None = None, at: int | None = None, object_type: str = "companies"
    ) -> list[SimObject]:
        """A bulk edit or workflow: stamp the first `n` records (all when None) with one
        modified timestamp `at` (epoch ms, default now), as HubSpot does (supaglue #585)."""
        store = self.stores[object_type]
        now = self.now_ms() if at is None else at
        with self.lock:
            touched = sorted(store, key=lambda o: o.id)[:n]
            for obj in touched:
                store.touch(obj, now)
            return touched

    def fail_email(self, *emails: str) -> None:
        """Make HubSpot refuse these addresses as INVALID_EMAIL (well-formed or not)."""
        with self.lock:
            self.contacts.invalid_emails.update(e.lower() for e in emails)

    def set_search_lag(self, seconds: float) -> None:
        with self.lock:
            for store in self.stores.values():
                store.search_lag = seconds


def _is_search(request: Request) -> bool:
    return request.method == "POST" and request.path.endswith("/search")


# --- command line: `syncd sim hubspot` --------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sim hubspot`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="bearer token to require (default: any)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument(
        "--search-lag", type=float, default=0.0, help="seconds before search sees a write"
    )
    parser.add_argument("--burst-limit", type=int, default=100, help="requests per 10 s; 0: off")
    parser.add_argument("--daily-limit", type=int, default=250_000, help="requests per day; 0: off")
    parser.add_argument("--search-rate", type=int, default=5, help="searches per second; 0: off")
    parser.add_argument(
        "--setup", action="store_true", help="pre-create connect_account_id and connect_tax_id"
    )


def build(args: argparse.Namespace) -> SimServer:
    """The server `serve` runs, not yet started."""
    limits = RateLimits(
        burst=args.burst_limit or None,
        daily=args.daily_limit or None,
        search_per_second=args.search_rate or None,
    )
    app = HubSpotSim(
        args.token,
        limits=limits,
        search_lag=args.search_lag,
        custom_properties=args.setup,
        seed=args.seed,
    )
    return SimServer(app, port=args.port, host=args.host, seed=args.seed)


def serve(args: argparse.Namespace) -> int:
    """Run the simulator in the foreground until interrupted."""
    server = build(args)
    auth = "the given token" if args.token else "any bearer token"
    print(f"HubSpot simulator on {server.url} (accepts {auth})", flush=True)
    return server.serve_forever()
