"""The Salesforce simulator's REST routes: API versions, OAuth token, SOQL query, describe, upsert.

Each handler answers over the org (`salesforce_data`), its queries (`salesforce_query`) and its
upserts (`salesforce_upsert`), with Salesforce's error array on failure. `SalesforceSim` adds the
session check, the API limits and the test hooks on top.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, unquote

from syncd.sim.base import Request, Response, SimApp
from syncd.sim.salesforce_data import Org
from syncd.sim.salesforce_query import QueryRunner, project, sobject_name
from syncd.sim.salesforce_schema import child_relationships, describe
from syncd.sim.salesforce_soql import SoqlError
from syncd.sim.salesforce_upsert import RequestError, upsert_by_path, upsert_collection

API = r"/services/data/v(?P<version>\d+\.\d+)"


def sf_error(status: int, code: str, message: str) -> Response:
    """A response with Salesforce's error body: an array of {message, errorCode}."""
    return Response(status, [{"message": message, "errorCode": code}])


class SalesforceRoutes(SimApp):
    """The org, the issued access tokens and the routes over them."""

    def __init__(
        self,
        token: str,
        *,
        refresh_token: str | None,
        client_id: str | None,
        client_secret: str | None,
        page_size: int,
        visibility_delay: float,
        validate_email: bool,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.clock = clock
        self.org = Org(clock, visibility_delay)
        self.org.validate_email = validate_email
        self.tokens = {token}
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.queries = QueryRunner(self.org, page_size)
        self.token_grants = 0
        self.route("GET", r"/services/data/?", self._versions)
        self.route("POST", r"/services/oauth2/token", self._token)
        self.route("GET", API + r"/query/?", self._query)
        self.route("GET", API + r"/query/(?P<locator>[^/]+)", self._query_more)
        self.route("GET", API + r"/sobjects/(?P<sobject>\w+)/describe/?", self._describe)
        self.route("GET", API + r"/sobjects/(?P<sobject>\w+)/(?P<rid>\w+)", self._get)
        self.route(
            "PATCH", API + r"/composite/sobjects/(?P<sobject>\w+)/(?P<field>\w+)", self._upsert
        )
        self.route(
            "PATCH",
            API + r"/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/(?P<value>[^/]+)",
            self._upsert_one,
        )

    def not_found(self, request: Request) -> Response:
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    # -- routes ------------------------------------------------------------------------------

    def _versions(self, request: Request) -> Response:
        return Response(
            200, [{"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}]
        )

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode(errors="replace")).items()}

        def refuse(code: str, description: str) -> Response:
            return Response(400, {"error": code, "error_description": description})

        if form.get("grant_type") != "refresh_token":
            return refuse("unsupported_grant_type", "grant type not supported")
        if self.client_id is not None and form.get("client_id") != self.client_id:
            return refuse("invalid_client_id", "client identifier invalid")
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return refuse("invalid_client", "invalid client credentials")
        if self.refresh_token is None or form.get("refresh_token") != self.refresh_token:
            return refuse("invalid_grant", "expired access/refresh token")
        token = "00DSm0000000001!" + secrets.token_urlsafe(32)
        self.tokens.add(token)
        self.token_grants += 1
        host = request.header("host") or ""
        return Response(
            200,
            {
                "access_token": token,
                "instance_url": f"http://{host}" if host else "",
                "token_type": "Bearer",
                "issued_at": str(int(self.clock() * 1000)),
                "scope": "api refresh_token",
            },
        )

    def _query(self, request: Request, version: str) -> Response:
        text = parse_qs(request.raw_query).get("q", [""])[0]
        try:
            return Response(
                200, self.queries.run(text, version, request.header("sforce-query-options"))
            )
        except SoqlError as exc:
            return sf_error(400, exc.code, exc.message)

    def _query_more(self, request: Request, version: str, locator: str) -> Response:
        try:
            return Response(200, self.queries.more(locator, version))
        except SoqlError as exc:
            return sf_error(400, exc.code, exc.message)

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        name = sobject_name(self.org, sobject)
        if name is None:
            return self.not_found(request)
        children = child_relationships(self.org.schemas, name)
        return Response(200, describe(name, self.org.schemas[name], children))

    def _get(self, request: Request, version: str, sobject: str, rid: str) -> Response:
        name = sobject_name(self.org, sobject)
        row = self.org.records[name].get(rid) if name else None
        if name is None or row is None:
            return self.not_found(request)
        return Response(200, project(name, self.org.schemas[name], row, version))

    def _upsert(self, request: Request, version: str, sobject: str, field: str) -> Response:
        name = sobject_name(self.org, sobject)
        if name is None:
            return self.not_found(request)
        try:
            body = request.json()
        except ValueError:
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        try:
            return Response(200, upsert_collection(self.org, name, field, body))
        except RequestError as exc:
            return sf_error(exc.status, exc.code, exc.message)

    def _upsert_one(
        self, request: Request, version: str, sobject: str, field: str, value: str
    ) -> Response:
        name = sobject_name(self.org, sobject)
        if name is None:
            return self.not_found(request)
        try:
            status, answer = upsert_by_path(
                self.org, name, field, unquote(value), request.json(), version
            )
        except ValueError:
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        except RequestError as exc:
            return sf_error(exc.status, exc.code, exc.message)
        return Response(status, answer)
