"""A CloudBlue Connect simulator: tier accounts, their versions, tier account requests, products
and assets, served over HTTP with Connect's auth, RQL, paging and error shapes.

Serve it with `SimServer(ConnectSim(api_key)).start()`; clients use `<server.url>/public/v1` (the
routes answer with and without that prefix). Behaviour the docs leave open is chosen as
connect-api.md infers it and marked INFERRED below. Test hooks (`add_account`, `change_account`,
`seed`, ...) are plain methods, safe to call while the server runs.
"""

from __future__ import annotations

import argparse
import hmac
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from syncd.sim.base import Request, Response, SimApp, SimServer
from syncd.sim.connect_fields import account_fields, asset_fields, product_fields, tar_fields
from syncd.sim.connect_model import Json
from syncd.sim.connect_render import account_json, asset_json, product_json, tar_json
from syncd.sim.connect_state import ConnectState
from syncd.sim.connect_validate import Invalid, account_changes
from syncd.sim.rql import Query, RQLError, parse
from syncd.sim.rql_filter import Field, apply

T = TypeVar("T")
DEFAULT_API_KEY = "SU-000-000-000:simulator"
_PREFIX = "(?:/public/v1)?"
_ID = "(?P<id>[^/]+)"


class ConnectSim(ConnectState, SimApp):
    """The Connect API over a `ConnectState` (the records and the test hooks)."""

    name = "connect"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        max_limit: int = 1000,
        default_limit: int = 100,
        strict_filters: bool = False,
        seed: int = 0,
    ) -> None:
        SimApp.__init__(self)
        ConnectState.__init__(self, seed)
        self.api_key = api_key
        self.max_limit = max_limit
        """Pages are clamped to this size without an error (django-rql `max_limit`)."""
        self.default_limit = default_limit
        """Page size when the query has no `limit` (INFERRED; OAC sends 100)."""
        self.strict_filters = strict_filters
        """Answer 400 to filters on undeclared fields instead of ignoring them like Connect."""
        self._account_fields = account_fields(self.accounts.get)
        self._tar_fields = tar_fields()
        self._asset_fields = asset_fields()
        self._product_fields = product_fields()
        self._results: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        for method, path, handler in (
            ("GET", "/tier/accounts", self._list_accounts),
            ("GET", f"/tier/accounts/{_ID}", self._get_account),
            ("PUT", f"/tier/accounts/{_ID}", self._put_account),
            ("GET", f"/tier/accounts/{_ID}/versions", self._list_versions),
            ("GET", f"/tier/accounts/{_ID}/versions/(?P<version>[^/]+)", self._get_version),
            ("GET", "/tier/account-requests", self._list_tars),
            ("POST", "/tier/account-requests", self._create_tars),
            ("GET", f"/tier/account-requests/{_ID}", self._get_tar),
            ("POST", f"/tier/account-requests/{_ID}/accept", self._accept),
            ("POST", f"/tier/account-requests/{_ID}/ignore", self._ignore),
            ("GET", "/products", self._list_products),
            ("GET", f"/products/{_ID}", self._get_product),
            ("GET", "/assets", self._list_assets),
            ("GET", f"/assets/{_ID}", self._get_asset),
        ):
            # PHP SDK posts to `.../accept/`: a trailing slash is accepted everywhere.
            self.route(method, f"{_PREFIX}{path}/?", handler)

    # -- framework hooks ------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        header = request.header("authorization") or ""
        if hmac.compare_digest(header.encode(), f"ApiKey {self.api_key}".encode()):
            return None
        return error(401, "AUTH_001", "API request is unauthorized.")

    def error_response(self, status: int, headers: dict[str, str]) -> Response:
        # INFERRED: Connect's error shape for throttling and server errors (none documented).
        code = "RATE_001" if status == 429 else "SYS_001"
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = error(status, code, f"{phrase}.")
        response.headers.update(headers)
        return response

    def not_found(self, request: Request) -> Response:
        return error(404, "NOT_FOUND", f"No route for {request.method} {request.path}.")

    # -- collections ----------------------------------------------------------------------------

    def _page(
        self,
        request: Request,
        key: tuple[Any, ...],
        items: Callable[[], Sequence[T]],
        fields: dict[str, Field[T]],
        render: Callable[[T], Json],
    ) -> Response:
        try:
            query = parse(request.query)
            rows = self._rows(key, query, items, fields)
        except RQLError as exc:
            return error(400, "VAL_001", str(exc))
        limit = self.default_limit if query.limit is None else query.limit
        limit = min(limit, self.max_limit)
        offset = query.offset or 0
        page = rows[offset : offset + limit]
        last = offset + len(page) - 1 if page else offset
        # connect-api.md §4.3: `items <first>-<last>/<total>`; an empty page repeats the offset.
        headers = {"Content-Range": f"items {offset}-{last}/{len(rows)}"}
        return Response(200, [render(item) for item in page], headers)

    def _rows(
        self,
        key: tuple[Any, ...],
        query: Query,
        items: Callable[[], Sequence[T]],
        fields: dict[str, Field[T]],
    ) -> list[T]:
        # Paging through a large collection repeats one query with a moving offset: filter and
        # sort once per state of the data, then serve pages from the cached rows.
        cache_key = (
            *key,
            query.filter,
            query.ordering,
            query.search,
            self.mutations,
            self.strict_filters,
        )
        rows = self._results.get(cache_key)
        if rows is None:
            # `items()` is in id order and sorts are stable, so `id` breaks every tie.
            rows = apply(items(), query, fields, self.strict_filters)
            self._results[cache_key] = rows
            while len(self._results) > 16:
                self._results.popitem(last=False)
        return rows

    def _list_accounts(self, request: Request) -> Response:
        return self._page(
            request,
            ("accounts",),
            self._sorted_accounts,
            self._account_fields,
            lambda a: account_json(a, self.accounts.get),
        )

    def _list_tars(self, request: Request) -> Response:
        return self._page(
            request,
            ("tars",),
            self._sorted_tars,
            self._tar_fields,
            lambda t: tar_json(t, self.accounts.get),
        )

    def _list_assets(self, request: Request) -> Response:
        return self._page(request, ("assets",), self._sorted_assets, self._asset_fields, asset_json)

    def _list_products(self, request: Request) -> Response:
        return self._page(
            request, ("products",), self._sorted_products, self._product_fields, product_json
        )

    def _list_versions(self, request: Request, id: str) -> Response:
        account = self.accounts.get(id)
        if account is None:
            return _missing(id)
        return self._page(
            request,
            ("versions", id),
            lambda: account.versions,
            {},
            lambda data: account_json(account, self.accounts.get, data),
        )

    # -- single objects -------------------------------------------------------------------------

    def _get_account(self, request: Request, id: str) -> Response:
        account = self.accounts.get(id)
        if account is None:
            return _missing(id)
        return Response(200, account_json(account, self.accounts.get))

    def _get_version(self, request: Request, id: str, version: str) -> Response:
        account = self.accounts.get(id)
        number = int(version) if version.isdigit() else 0
        if account is None or not 1 <= number <= len(account.versions):
            return _missing(f"{id} version {version}")
        return Response(200, account_json(account, self.accounts.get, account.versions[number - 1]))

    def _get_tar(self, request: Request, id: str) -> Response:
        tar = self.tars.get(id)
        if tar is None:
            return _missing(id)
        return Response(200, tar_json(tar, self.accounts.get))

    def _get_product(self, request: Request, id: str) -> Response:
        product = self.products.get(id)
        if product is None:
            return _missing(id)
        return Response(200, product_json(product))

    def _get_asset(self, request: Request, id: str) -> Response:
        asset = self.assets.get(id)
        if asset is None:
            return _missing(id)
        return Response(200, asset_json(asset))

    # -- writes ---------------------------------------------------------------------------------

    def _put_account(self, request: Request, id: str) -> Response:
        account = self.accounts.get(id)
        if account is None:
            return _missing(id)
        body = _json_object(request)
        if body is None:
            return error(400, "VAL_001", "Invalid JSON body: expected an object.")
        try:
            changes = account_changes(body, account, self.accounts.get)
        except Invalid as exc:
            return error(400, "VAL_001", *exc.errors)
        self.apply_change(account, changes, self.api_user)
        return Response(200, account_json(account, self.accounts.get))

    def _create_tars(self, request: Request) -> Response:
        body = _json_object(request)
        if body is None:
            return error(400, "VAL_001", "Invalid JSON body: expected an object.")
        if body.get("type") != "update":
            return error(400, "VAL_001", f'type: "{body.get("type")}" is not a valid choice.')
        wanted = body.get("account")
        if not isinstance(wanted, dict):
            return error(400, "VAL_001", "account: This field is required.")
        fields = dict(wanted)
        account = self.accounts.get(fields.pop("id", None) or "")
        if account is None and "id" not in wanted and isinstance(fields.get("external_uid"), str):
            account = self.find_by_external_uid(fields.pop("external_uid"))
        if account is None:
            return error(400, "VAL_001", "account: Tier account not found.")
        try:
            changes = account_changes(fields, account, self.accounts.get)
        except Invalid as exc:
            return error(400, "VAL_001", *exc.errors)
        tars = self.apply_change(account, changes, self.api_user)
        # connect-api.md §2.3: the answer is a list, one TAR per linked product (INFERRED).
        return Response(201, [tar_json(t, self.accounts.get) for t in tars])

    def _accept(self, request: Request, id: str) -> Response:
        return self._settle(id, "accepted", None)

    def _ignore(self, request: Request, id: str) -> Response:
        body = _json_object(request) if request.body else {}
        if body is None:
            return error(400, "VAL_001", "Invalid JSON body: expected an object.")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            return error(400, "VAL_001", "reason: Not a valid string.")
        if reason is not None and len(reason) > 255:
            return error(
                400, "VAL_001", "reason: Ensure this field has no more than 255 characters."
            )
        return self._settle(id, "ignored", reason)

    def _settle(self, id: str, status: str, reason: str | None) -> Response:
        tar = self.tars.get(id)
        if tar is None:
            return _missing(id)
        if tar.status != "pending":
            # INFERRED (connect-api.md §8 q.4): a 400 that changes nothing.
            verb = "accepted" if status == "accepted" else "ignored"
            message = f"Tier account request {id} is {tar.status}: only pending ones can be {verb}."
            return error(400, "TAR_002", message)
        self.settle(tar, status, reason, self.api_user)
        return Response(200, tar_json(tar, self.accounts.get))


def error(status: int, code: str, *messages: str) -> Response:
    """A response in Connect's error shape: `{"error_code": ..., "errors": [...]}`."""
    return Response(status, {"error_code": code, "errors": list(messages)})


def _missing(what: str) -> Response:
    # INFERRED: the error code of a 404 is undocumented.
    return error(404, "NOT_FOUND", f"{what} not found.")


def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `syncd sim connect`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key clients must send")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--accounts", type=int, default=200, help="tier accounts to generate")
    parser.add_argument("--products", type=int, default=3, help="products to generate")
    parser.add_argument("--max-limit", type=int, default=1000, help="largest page served")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")


def serve(args: argparse.Namespace) -> int:
    """Run the simulator in the foreground until interrupted; print its base URL."""
    sim = ConnectSim(args.api_key, max_limit=args.max_limit, seed=args.seed)
    summary = sim.seed(args.seed, accounts=args.accounts, products=args.products)
    server = SimServer(sim, port=args.port, host=args.host, seed=args.seed)
    server.faults.latency = args.latency
    print(f"{server.url}/public/v1", flush=True)
    print(
        f"connect simulator: {summary.accounts} accounts, {summary.products} products, "
        f"{summary.tars} tier account requests ({summary.pending} pending); Ctrl-C stops",
        flush=True,
    )
    return server.serve_forever()


__all__ = ["DEFAULT_API_KEY", "ConnectSim", "add_arguments", "error", "serve"]
