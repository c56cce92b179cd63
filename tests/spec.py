"""Official API specs for conformance tests: load once, resolve `$ref`s, validate responses.

Specs are read from `$SYNCD_SPEC_DIR` (default: `<repo>/../shared/spec`); a test that needs one
calls `load_spec(name)`, which skips the test with a clear reason when the file is absent. Specs
are never copied into the repo.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

Schema = dict[str, Any]
_REPO = Path(__file__).resolve().parent.parent


def spec_dir() -> Path:
    """Where the official specs are: `$SYNCD_SPEC_DIR`, else `../shared/spec` beside the repo."""
    configured = os.environ.get("SYNCD_SPEC_DIR")
    return Path(configured) if configured else _REPO.parent / "shared" / "spec"


def load_spec(name: str) -> dict[str, Any]:
    """The parsed spec file `name` (YAML or JSON), cached for the session; skip if absent."""
    path = spec_dir() / name
    if not path.is_file():
        pytest.skip(f"official spec {name} not found in {path.parent} (set SYNCD_SPEC_DIR)")
    return _load(str(path))


@functools.cache
def _load(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        loaded: dict[str, Any] = json.loads(text)
        return loaded
    # The Connect spec is 2.3 MB of YAML: the C loader is ten times faster when available.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    parsed: dict[str, Any] = yaml.load(text, Loader=loader)
    return parsed


def resolve(spec: dict[str, Any], node: Any, _seen: tuple[str, ...] = ()) -> Any:
    """`node` with every local `$ref` inlined (a copy); a recursive reference becomes `{}`."""
    if isinstance(node, list):
        return [resolve(spec, item, _seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in _seen:
            return {}
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        resolved = resolve(spec, target, (*_seen, ref))
        return {**resolved, **resolve(spec, siblings, _seen)} if siblings else resolved
    return {key: resolve(spec, value, _seen) for key, value in node.items()}


def operation(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    """The operation object of `method path`, with `$ref`s resolved."""
    try:
        op = spec["paths"][path][method.lower()]
    except KeyError:
        raise KeyError(f"{method.upper()} {path} is not in the spec") from None
    resolved: dict[str, Any] = resolve(spec, op)
    return resolved


def response_schema(
    spec: dict[str, Any], path: str, method: str, status: int | str, media: str = "application/json"
) -> Schema:
    """The resolved JSON schema of a documented response (`path` as written in the spec)."""
    responses = operation(spec, path, method)["responses"]
    response = responses.get(str(status))
    if response is None:
        raise KeyError(f"{method.upper()} {path} documents no {status} response")
    schema: Schema = response["content"][media]["schema"]
    return schema


def component_schema(spec: dict[str, Any], name: str) -> Schema:
    """A resolved schema from `components/schemas` (a copy: safe to adjust)."""
    return copy.deepcopy(resolve(spec, spec["components"]["schemas"][name]))


def validate(spec: dict[str, Any], schema: Schema, instance: Any) -> None:
    """Raise `jsonschema.ValidationError` (with every error listed) if `instance` does not fit."""
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        first = errors[0]
        first.message = f"{len(errors)} schema error(s):\n" + "\n".join(lines[:20])
        raise first
