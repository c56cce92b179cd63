"""The deployment files in deploy/ say what syncd can do: every command they run parses with the
real CLI, every SYNCD_* variable is a setting, the manifests carry the probes and the security
settings, the compose stack is wired to its own simulators, and the Dockerfile's health check
answers as Docker expects. (Docker itself is not here: the image is never built by the tests.)"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.config import SECRET_FIELDS, Settings, env_name
from syncd.service.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SETTING = re.compile(r"\bSYNCD_[A-Z0-9_]+\b")
KNOWN_VARIABLES = {env_name(name) for name in Settings.model_fields} | {
    env_name(name) + "_FILE" for name in SECRET_FIELDS
}


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def assert_command_parses(argv: list[str]) -> None:
    """`syncd <argv>` is a command line the real parser accepts (else argparse exits with 2)."""
    if argv and argv[0] == "run" and not _has_command("run"):
        pytest.skip("`syncd run` is not in the command line yet (the daemon is built in parallel)")
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`syncd {' '.join(argv)}` does not parse (exit {exc.code})")


def _has_command(name: str) -> bool:
    """Whether `syncd NAME --help` is answered (exit 0) rather than refused (exit 2)."""
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args([name, "--help"])
        except SystemExit as exc:
            return exc.code == 0
    return True


def test_every_syncd_variable_in_deploy_is_a_setting() -> None:
    used: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.parent.name != "compose-secrets":
            used |= set(SETTING.findall(path.read_text(encoding="utf-8")))

    assert used, "no SYNCD_ variable found: the scan is broken"
    assert used - KNOWN_VARIABLES == set()


def test_the_env_example_names_every_setting() -> None:
    text = (DEPLOY / "systemd" / "syncd.env.example").read_text(encoding="utf-8")

    missing = [env_name(f) for f in Settings.model_fields if f != "mapping"]
    assert [name for name in missing if name not in text] == []
    assert "--config" in text  # where the mapping goes instead


# --- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_yaml(DEPLOY / "compose.yaml")
    return document


def syncd_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "syncd:local"
    }


def test_compose_runs_only_commands_that_exist(compose: dict[str, Any]) -> None:
    commands = {name: s["command"] for name, s in syncd_services(compose).items()}

    assert commands["migrate"] == ["db", "upgrade"]
    assert commands["connect-sim"][:2] == ["sim", "connect"]
    assert commands["hubspot-sim"][:2] == ["sim", "hubspot"]
    for argv in sorted(commands.values(), key=lambda a: a == ["run"]):  # `run` last: it may skip
        assert_command_parses([str(arg) for arg in argv])
    assert commands["syncd"] == ["run"]


def test_compose_starts_syncd_after_the_migration_on_a_healthy_postgres(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]

    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    needs = services["syncd"]["depends_on"]
    assert needs["migrate"]["condition"] == "service_completed_successfully"
    assert {"connect-sim", "hubspot-sim"} <= set(needs)


def test_compose_points_syncd_at_its_simulators_with_matching_secrets(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    env = services["syncd"]["environment"]
    secrets = {
        name: (DEPLOY / spec["file"]).read_text(encoding="utf-8").strip()
        for name, spec in compose["secrets"].items()
    }
    connect = [str(a) for a in services["connect-sim"]["command"]]
    hubspot = [str(a) for a in services["hubspot-sim"]["command"]]

    def option(argv: list[str], name: str) -> str:
        return argv[argv.index(name) + 1]

    assert env["SYNCD_CONNECT_URL"] == f"http://connect-sim:{option(connect, '--port')}/public/v1"
    assert env["SYNCD_HUBSPOT_URL"] == f"http://hubspot-sim:{option(hubspot, '--port')}"
    assert option(connect, "--host") == option(hubspot, "--host") == "0.0.0.0"
    assert secrets["connect_api_key"] == option(connect, "--api-key")
    assert secrets["hubspot_token"] == option(hubspot, "--token")
    assert f":{secrets['postgres_password']}@postgres:" in secrets["database_url"]
    for name, value in env.items():
        if name.endswith("_FILE"):
            assert value.removeprefix("/run/secrets/") in services["syncd"]["secrets"]
    assert not any(name in env for name in map(env_name, SECRET_FIELDS))  # files only


# --- Kubernetes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    (kustomization,) = load_yaml(DEPLOY / "k8s" / "kustomization.yaml")
    objects: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in load_yaml(DEPLOY / "k8s" / resource):
            objects[document["kind"]] = document
    return objects


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found


def test_k8s_has_the_objects_kustomize_lists(k8s: dict[str, dict[str, Any]]) -> None:
    assert set(k8s) == {"ConfigMap", "Secret", "Job", "Deployment", "Service"}


def test_k8s_workloads_run_non_root_read_only_with_no_capability(
    k8s: dict[str, dict[str, Any]],
) -> None:
    for kind in ("Deployment", "Job"):
        pod = k8s[kind]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, kind
        assert pod["automountServiceAccountToken"] is False, kind
        for container in containers(k8s[kind]):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, kind
            assert context["allowPrivilegeEscalation"] is False, kind
            assert context["capabilities"]["drop"] == ["ALL"], kind
            assert container["resources"]["requests"], kind
            assert container["resources"]["limits"]["memory"], kind
            assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"], kind
            assert_command_parses([str(a) for a in container["args"]])


def test_k8s_deployment_probes_health_and_outlasts_the_shutdown_grace(
    k8s: dict[str, dict[str, Any]],
) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    (daemon,) = containers(k8s["Deployment"])
    config = k8s["ConfigMap"]["data"]
    port = next(p for p in daemon["ports"] if p["name"] == "metrics")

    assert daemon["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert daemon["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert config["SYNCD_HTTP_ADDR"] == f"0.0.0.0:{port['containerPort']}"
    assert pod["terminationGracePeriodSeconds"] > float(config["SYNCD_SHUTDOWN_GRACE"])
    assert k8s["Deployment"]["spec"]["replicas"] == 2
    assert k8s["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    assert k8s["Service"]["spec"]["ports"][0]["targetPort"] == "metrics"


def test_k8s_secret_files_are_the_ones_the_settings_read(k8s: dict[str, dict[str, Any]]) -> None:
    keys = set(k8s["Secret"]["stringData"])
    for kind in ("Deployment", "Job"):
        (container,) = containers(k8s[kind])
        mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
        files = {
            e["value"].removeprefix(mount["mountPath"] + "/")
            for e in container["env"]
            if e["name"].endswith("_FILE")
        }
        assert files, kind
        assert files <= keys, kind
    assert not set(k8s["ConfigMap"]["data"]) & {env_name(s) for s in SECRET_FIELDS}


# --- systemd and Docker --------------------------------------------------------------------


def unit_values(path: Path, key: str) -> list[str]:
    prefix = key + "="
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def test_systemd_units_run_existing_commands_and_outlast_the_shutdown_grace() -> None:
    daemon, resync = (
        DEPLOY / "systemd" / "syncd.service",
        DEPLOY / "systemd" / "syncd-resync.service",
    )

    assert unit_values(daemon, "Type") == ["notify"]
    assert unit_values(resync, "Type") == ["oneshot"]
    stop = unit_values(daemon, "TimeoutStopSec")[0]
    assert float(stop.removesuffix("s")) > Settings().shutdown_grace
    assert unit_values(DEPLOY / "systemd" / "syncd-resync.timer", "Persistent") == ["true"]
    assert_command_parses(unit_values(resync, "ExecStart")[0].split()[1:])
    assert_command_parses(unit_values(daemon, "ExecStart")[0].split()[1:])


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_runs_syncd_as_a_numeric_non_root_user() -> None:
    found = dockerfile_instructions()
    value = {kind: arg for kind, arg in found}  # the last of each kind: the runtime stage's

    assert [arg for kind, arg in found if kind == "FROM"] == [
        "python:3.11-slim AS build",
        "python:3.11-slim",
    ]
    user = value["USER"].split(":")
    assert all(part.isdigit() and int(part) > 0 for part in user)
    assert json.loads(value["ENTRYPOINT"]) == ["syncd"]
    assert_command_parses(json.loads(value["CMD"]))
    assert "SYNCD_HTTP_ADDR=0.0.0.0:9108" in value["ENV"].split()


def test_dockerfile_copies_what_the_wheel_needs_and_dockerignore_keeps_it() -> None:
    copies = [arg.split() for kind, arg in dockerfile_instructions() if kind == "COPY"]
    copied = {source for *sources, _target in copies for source in sources}
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()

    # The wheel's inputs (pyproject's hatch config: the package, the migrations, the readme).
    assert copied == {"pyproject.toml", "README.md", "alembic", "syncd"}
    for source in copied:
        assert (REPO / source).exists()
        assert f"!{source}" in ignore or f"!{source}/" in ignore


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Health.status = 200


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_image_health_check_follows_readyz(
    health_server: ThreadingHTTPServer, status: int, healthy: bool
) -> None:
    (check,) = [arg for kind, arg in dockerfile_instructions() if kind == "HEALTHCHECK"]
    argv = json.loads(check[check.index("CMD") + 3 :])
    assert argv[:2] == ["python", "-c"]
    _Health.status = status

    result = subprocess.run(
        [sys.executable, "-c", argv[2]],
        env={"SYNCD_HTTP_ADDR": f"0.0.0.0:{health_server.server_address[1]}"},
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert (result.returncode == 0) is healthy
