"""A Salesforce REST simulator: Collections upsert, SOQL with query locators, describe, OAuth.

Served by `SimServer` (request log, scripted and random faults); the routes are in
`salesforce_routes`, the session check and limits here. What it reproduces, each a test
knob (facts from the Salesforce REST guide and limits cheatsheet, see docs/crm-apis.md §4.2):

- errors as an array, `[{"message": …, "errorCode": …}]`, injected faults included;
- bearer auth: an unknown or expired token answers 401 `INVALID_SESSION_ID`; the OAuth endpoint
  `POST /services/oauth2/token` (grant_type=refresh_token) issues new access tokens;
- a rolling 24 h request counter sent as `Sforce-Limit-Info: api-usage=N/LIMIT` on every API
  response; past the limit, 403 `REQUEST_LIMIT_EXCEEDED` "TotalRequests Limit exceeded." (and the
  same code for the concurrent long-running limit, via `concurrent_limit_errors`);
- query pages of ≤2,000 records with `nextRecordsUrl` locators (at most 10 open per user);
- URIs over 16,384 bytes answer 414 (Salesforce Help 000386264);
- every write bumps `SystemModstamp` (the echo of our own writes), optionally seen by queries only
  after `visibility_delay` seconds.
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from syncd.sim.base import Request, Response, SimServer
from syncd.sim.salesforce_data import Row
from syncd.sim.salesforce_routes import SalesforceRoutes, sf_error
from syncd.sim.salesforce_schema import FieldSpec

DEFAULT_TOKEN = "sim-salesforce-token"  # noqa: S105 - the simulator's documented default
TOTAL_REQUESTS = "TotalRequests Limit exceeded."
CONCURRENT_REQUESTS = "ConcurrentPerOrgLongTxn Limit exceeded."
MAX_URI_BYTES = 16_384
_DAY = 86_400
_INJECTED = {
    400: ("MALFORMED_REQUEST", "The request could not be understood"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    429: ("REQUEST_LIMIT_EXCEEDED", CONCURRENT_REQUESTS),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. ErrorId: sim-0000"),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
}


class SalesforceSim(SalesforceRoutes):
    """The org, its routes (`SalesforceRoutes`) and its limits. Test hooks are the public methods
    below the limits."""

    name = "salesforce"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        refresh_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        daily_limit: int = 100_000,
        page_size: int = 2000,
        visibility_delay: float = 0.0,
        validate_email: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            token,
            refresh_token=refresh_token,
            client_id=client_id,
            client_secret=client_secret,
            page_size=page_size,
            visibility_delay=visibility_delay,
            validate_email=validate_email,
            clock=clock,
        )
        self.daily_limit = daily_limit
        self.concurrent_limit_errors = 0
        """The next N API requests answer 403 REQUEST_LIMIT_EXCEEDED (concurrent variant)."""
        self._usage: deque[list[int]] = deque()  # [second, requests], for the rolling 24 h

    # -- framework hooks ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        if not request.path.startswith("/services/data/v"):
            return None  # the version list and the OAuth endpoint need no session
        if len(request.path) + 1 + len(request.raw_query) > MAX_URI_BYTES:
            return sf_error(414, "URI_TOO_LONG", "URI Too Long")
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        with self.lock:
            if scheme.lower() not in {"bearer", "oauth"} or token.strip() not in self.tokens:
                return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if self.api_usage >= self.daily_limit:
                return sf_error(403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS)
            if self.concurrent_limit_errors > 0:
                self.concurrent_limit_errors -= 1
                return sf_error(403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_REQUESTS)
            self._count_request()
        return None

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        if request.path.startswith("/services/data/v"):
            response.headers.setdefault("Sforce-Limit-Info", self.limit_info())
        return response

    def error_response(self, status: int, headers: dict[str, str]) -> Response:
        with self.lock:
            if status >= 500:
                self._count_request()  # it reached the org, so it counts
            headers.setdefault("Sforce-Limit-Info", self.limit_info())
        if status in {502, 504}:
            # The load balancer answers these, with HTML rather than the API's JSON.
            html = f"<html><body><h1>{status}</h1></body></html>".encode()
            return Response(status, None, {**headers, "Content-Type": "text/html"}, raw=html)
        code, message = _INJECTED.get(status, ("UNKNOWN_EXCEPTION", "Injected failure"))
        response = sf_error(status, code, message)
        response.headers.update(headers)
        return response

    # -- limits ------------------------------------------------------------------------------

    def _count_request(self) -> None:
        second = int(self.clock())
        if self._usage and self._usage[-1][0] == second:
            self._usage[-1][1] += 1
        else:
            self._usage.append([second, 1])

    @property
    def api_usage(self) -> int:
        """Requests counted in the rolling 24 hours."""
        horizon = int(self.clock()) - _DAY
        while self._usage and self._usage[0][0] <= horizon:
            self._usage.popleft()
        return sum(count for _, count in self._usage)

    @property
    def soql_log(self) -> list[str]:
        """Every SOQL statement accepted, as received."""
        return self.queries.log

    @property
    def page_size(self) -> int:
        return self.queries.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.queries.page_size = value

    @property
    def validate_email(self) -> bool:
        """Whether Contact emails are checked (INVALID_EMAIL_ADDRESS), as Salesforce does."""
        return self.org.validate_email

    @validate_email.setter
    def validate_email(self, value: bool) -> None:
        self.org.validate_email = value

    @property
    def visibility_delay(self) -> float:
        """Seconds before a write shows in query results (reads by id see it at once)."""
        return self.org.visibility_delay

    @visibility_delay.setter
    def visibility_delay(self, value: float) -> None:
        self.org.visibility_delay = value

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage}/{self.daily_limit}"

    # -- test hooks --------------------------------------------------------------------------

    def _edit(self, sobject: str, ext_id: str, fields: dict[str, Any]) -> str:
        with self.lock:
            row = self.org.by_external_id(sobject, "Connect_Account_Id__c", ext_id)
            if row is None:
                raise KeyError(f"no {sobject} with Connect_Account_Id__c {ext_id!r}")
            unknown = set(fields) - set(self.org.schemas[sobject])
            if unknown:
                raise KeyError(f"no such {sobject} field(s): {sorted(unknown)}")
            return self.org.write(sobject, row["Id"], fields)[0]

    def edit_account(self, ext_id: str, **fields: Any) -> str:
        """A user's edit in the Salesforce UI (no validation); returns the Account Id."""
        return self._edit("Account", ext_id, fields)

    def edit_contact(self, ext_id: str, **fields: Any) -> str:
        return self._edit("Contact", ext_id, fields)

    def account(self, ext_id: str) -> Row | None:
        with self.lock:
            row = self.org.by_external_id("Account", "Connect_Account_Id__c", ext_id)
            return dict(row) if row else None

    def contact(self, ext_id: str) -> Row | None:
        with self.lock:
            row = self.org.by_external_id("Contact", "Connect_Account_Id__c", ext_id)
            return dict(row) if row else None

    def count(self, sobject: str) -> int:
        with self.lock:
            return len(self.org.records[sobject])

    def refuse_email(self, *emails: str) -> None:
        """Make Salesforce refuse these addresses as INVALID_EMAIL_ADDRESS (well-formed or not)."""
        with self.lock:
            self.org.refused_emails.update(e.lower() for e in emails)

    def expire_token(self, token: str | None = None) -> None:
        """Expire one access token, or all of them (a refresh can still issue new ones)."""
        with self.lock:
            if token is None:
                self.tokens.clear()
            else:
                self.tokens.discard(token)

    def revoke_refresh_token(self) -> None:
        with self.lock:
            self.refresh_token = None

    def lock_row(self, ext_id: str, sobject: str = "Account", times: int = 1) -> None:
        """The next `times` writes of that record fail with UNABLE_TO_LOCK_ROW."""
        with self.lock:
            self.org.locks[(sobject, ext_id)] += times

    def exhaust_quota(self) -> None:
        """Use up the rolling 24 h allowance, as if other integrations had spent it."""
        with self.lock:
            missing = self.daily_limit - self.api_usage
            if missing > 0:
                self._usage.append([int(self.clock()), missing])

    def add_field(self, sobject: str, spec: FieldSpec) -> None:
        with self.lock:
            self.org.add_field(sobject, spec)

    def drop_field(self, sobject: str, name: str) -> None:
        with self.lock:
            self.org.drop_field(sobject, name)


# -- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sim salesforce`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the access token to accept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--refresh-token", help="enable the OAuth refresh flow with this token")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--visibility-delay", type=float, default=0.0)


def build_server(args: argparse.Namespace) -> SimServer:
    """The simulator the parsed options describe, not yet started."""
    app = SalesforceSim(
        args.token,
        refresh_token=args.refresh_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        daily_limit=args.daily_limit,
        page_size=args.page_size,
        visibility_delay=args.visibility_delay,
    )
    return SimServer(app, port=args.port, host=args.host, seed=args.seed)


def serve(args: argparse.Namespace) -> int:
    """Run the simulator in the foreground until interrupted; exit code 0."""
    server = build_server(args)
    print(f"salesforce simulator listening on {server.url} (API v62.0)", flush=True)
    return server.serve_forever()
