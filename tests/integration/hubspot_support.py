"""What the HubSpot simulator and adapter tests share: a clock they can drive, spec checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

TOKEN = "pat-test-token"
START = 1_767_225_600.0
"""2026-01-01T00:00:00Z, where the fake clock starts."""


class FakeClock:
    """Epoch seconds that move only when told: shared by the simulator (timestamps, rate
    windows, search lag) and the adapter's retry policy (its sleeps advance it)."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def ms(self) -> int:
        return int(self.now * 1000)


class Spec:
    """One of HubSpot's official OpenAPI 3.0 specs, to check real answers against."""

    # Fields real HubSpot error bodies carry beyond the spec's `Error` (crm-apis.md §4.1).
    ERROR_EXTRAS = frozenset({"status", "errorType", "policyName", "requestId"})

    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.doc, default_specification=DRAFT4)
        self._registry: Registry[Any] = Registry().with_resource("urn:spec", resource)

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The schema of an answer: 207 uses the 200 schema (it declares `errors`,
        `numErrors`), error statuses the `default` one (`Error`)."""
        responses = self.doc["paths"][path][method.lower()]["responses"]
        code = "200" if status == 207 else str(status)
        entry = self.resolve(responses.get(code) or responses["default"])
        media = next(iter(entry["content"].values()))
        return dict(media["schema"])

    def request_schema(self, path: str, method: str) -> dict[str, Any]:
        body = self.doc["paths"][path][method.lower()]["requestBody"]
        media = next(iter(self.resolve(body)["content"].values()))
        return dict(media["schema"])

    def component(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def problems(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Schema violations, plus keys the schema does not declare (a simulator must not invent
        fields), except the known extras of error bodies."""
        rooted = {"$ref": "urn:spec" + schema["$ref"]} if "$ref" in schema else schema
        validator = OAS30Validator(
            rooted, registry=self._registry, format_checker=oas30_format_checker
        )
        found = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
        is_error = self.resolve(schema) is self.doc["components"]["schemas"]["Error"]
        allowed = self.ERROR_EXTRAS if is_error else frozenset()
        found += [f"{p}: not declared" for p in self._undeclared(schema, instance, "$", allowed)]
        return found

    def _undeclared(
        self, schema: dict[str, Any], instance: Any, where: str, allowed: frozenset[str]
    ) -> Iterator[str]:
        schema = self.resolve(schema)
        if isinstance(instance, dict) and schema.get("type") == "object":
            declared = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, value in instance.items():
                if key in declared:
                    yield from self._undeclared(declared[key], value, f"{where}.{key}", allowed)
                elif isinstance(extra, dict):
                    yield from self._undeclared(extra, value, f"{where}.{key}", allowed)
                elif extra is None and declared and key not in allowed:
                    yield f"{where}.{key}"
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for index, value in enumerate(instance):
                yield from self._undeclared(schema["items"], value, f"{where}[{index}]", allowed)


def load_specs(spec_dir: Path) -> dict[str, Spec]:
    """The companies and contacts specs, or a skip naming where they were looked for."""
    folder = spec_dir / "hubspot"
    files = {"companies": folder / "companies-v3.json", "contacts": folder / "contacts-v3.json"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        pytest.skip(
            f"HubSpot's official specs are absent ({', '.join(missing)}); set SYNCD_SPEC_DIR"
        )
    return {name: Spec(path) for name, path in files.items()}
