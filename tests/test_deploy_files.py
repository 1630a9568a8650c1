"""The deployment files (docker/) checked without a container engine: the compose file, its
environment, each service's command against the real command-line interfaces installed
here, the Dockerfile against pyproject's extras, the workspace and celery configuration
against Dagster's own schemas, and the Helm values against the keys of Dagster's chart.

What needs an engine or a cluster (building the image, starting the services) is not
tested here; docker/README.md says what has been run and what has not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
APP = "/opt/dagster/app"  # the image's working directory
DAGSTER_SERVICES = ("webserver", "daemon", "user_code", "celery_worker")
RUN_SERVICES = ("user_code", "celery_worker")  # where runs and steps execute
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- helpers --------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def env_example() -> dict[str, str]:
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def filled_env() -> dict[str, str]:
    """docker/.env as a user fills it in: every empty value of the example set."""
    return {k: v or f"placeholder-{k.lower().replace('_', '-')}" for k, v in env_example().items()}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message},
    ${VAR?message}, and $$ for a literal $."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"${{{name}}} is required: {arg}")
            return value
        return value or ""

    return INTERPOLATION.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def scalars(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from scalars(value)
    elif isinstance(node, list):
        for value in node:
            yield from scalars(value)
    elif isinstance(node, str):
        yield node


def option_value(command: list[str], *flags: str) -> str:
    for i, token in enumerate(command):
        if token in flags:
            return command[i + 1]
    raise AssertionError(f"none of {flags} in {command}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(DOCKER / "compose.yaml")


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def rendered(services) -> dict:
    """The services with the environment of a filled-in docker/.env interpolated."""
    env = filled_env()

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return interpolate(node, env)
        return node

    return walk(services)


# --- compose: services and environment ------------------------------------------------


def test_compose_has_the_services_of_the_deployment(services):
    expected = {
        "postgres",
        "s3",
        "create_bucket",
        "mlflow",
        "user_code",
        "webserver",
        "daemon",
        "redis",
        "celery_worker",
    }
    assert expected <= set(services), expected - set(services)
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["profiles"] == ["celery"]
    assert services["celery_worker"]["profiles"] == ["celery"]
    for name in ("create_bucket", "mlflow", *DAGSTER_SERVICES):
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}


def test_every_variable_of_the_instance_is_set_for_every_dagster_service(services):
    dagster_yaml = load_yaml(DOCKER / "dagster.yaml")

    def env_keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "env" and isinstance(value, str):
                    yield value
                else:
                    yield from env_keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from env_keys(value)

    needed = set(env_keys(dagster_yaml))
    assert needed == {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    }
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        assert needed <= set(env), f"{name} lacks {needed - set(env)}"
        assert env["DAGSTER_PG_HOST"] == "postgres"
        assert env["DAGSTER_PG_DB"] == "dagster"


def test_runs_and_steps_see_the_production_stores(rendered):
    wanted = {
        "MLFLOW_TRACKING_URI",
        "RISK_ASSETS_AUDIT_LOG",
        "RISK_ASSETS_PRODUCTION",
        "RISK_ASSETS_EXECUTOR",
        "RISK_ASSETS_CELERY_BROKER",
        "RISK_ASSETS_CELERY_BACKEND",
        "RISK_ASSETS_OBJECT_STORE",
        "RISK_ASSETS_HOME",
        "RISK_ASSETS_MLFLOW_UI_URL",
        "RISK_ASSETS_DAGSTER_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    }
    from risk_assets.dagster._production import EXECUTORS

    for name in RUN_SERVICES:
        env = rendered[name]["environment"]
        assert wanted <= set(env), f"{name} lacks {wanted - set(env)}"
        assert env["RISK_ASSETS_PRODUCTION"] == "1"
        assert env["RISK_ASSETS_EXECUTOR"] in EXECUTORS
        assert urlsplit(env["MLFLOW_TRACKING_URI"]).hostname == "mlflow"
        audit = urlsplit(env["RISK_ASSETS_AUDIT_LOG"])
        assert (audit.scheme, audit.hostname, audit.path) == ("postgresql", "postgres", "/audit")
        for var in ("RISK_ASSETS_CELERY_BROKER", "RISK_ASSETS_CELERY_BACKEND"):
            assert urlsplit(env[var]).hostname == "redis"
        assert env["RISK_ASSETS_OBJECT_STORE"].startswith("s3://")
        assert urlsplit(env["AWS_ENDPOINT_URL"]).hostname == "s3"
        # the scratch folder is one volume for the run's process and every worker
        assert f"risk_assets_scratch:{env['RISK_ASSETS_HOME']}" in rendered[name]["volumes"]


def test_every_interpolated_variable_is_documented_in_env_example(compose):
    documented = set(env_example())
    used = {m.group(1) for s in scalars(compose) for m in INTERPOLATION.finditer(s)}
    assert used, "compose.yaml interpolates nothing"
    assert used <= documented, f"not in docker/.env.example: {sorted(used - documented)}"
    assert documented <= used, f"documented but unused: {sorted(documented - used)}"


def test_no_secret_is_written_in_compose_or_env_example(compose):
    required = set()

    def check(key: str, value) -> None:
        if SECRET_NAME.search(key) and not str(key).startswith("x-"):
            assert isinstance(value, str) and INTERPOLATION.fullmatch(value), (
                f"{key} is a secret and must come from the environment, not {value!r}"
            )
            required.add(INTERPOLATION.fullmatch(value).group(1))

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                check(str(key), value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(compose)
    # a password inside a URL or a command is a variable too
    for text in scalars(compose):
        for url in re.findall(r"[a-z0-9+]+://[^\s]+", text):
            netloc = url.split("://", 1)[1].split("/", 1)[0]
            if "@" in netloc and ":" in netloc.split("@")[0]:
                password = netloc.split("@")[0].split(":", 1)[1]
                assert INTERPOLATION.fullmatch(password), f"literal password in {url}"
    redis = compose["services"]["redis"]["command"]
    assert INTERPOLATION.fullmatch(option_value(redis, "--requirepass"))
    # every secret is required (${VAR:?...}): compose refuses to start without it
    for text in scalars(compose):
        for m in INTERPOLATION.finditer(text):
            if SECRET_NAME.search(m.group(1)):
                assert m.group(2) == ":?", f"${{{m.group(1)}}} must be required (:?)"
    example = env_example()
    for name in required | {"POSTGRES_PASSWORD", "REDIS_PASSWORD"}:
        assert example.get(name) == "", f"docker/.env.example sets {name}; leave it empty"
    assert (DOCKER / ".gitignore").read_text().split() == [".env"]


def test_compose_refuses_to_start_without_a_secret(services):
    env = filled_env()
    env.pop("POSTGRES_PASSWORD")
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        interpolate(services["postgres"]["environment"]["POSTGRES_PASSWORD"], env)


# --- commands and ports ---------------------------------------------------------------


def test_ports_and_addresses_agree(rendered):
    workspace = load_yaml(DOCKER / "workspace.yaml")
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    user_code = rendered["user_code"]["command"]
    assert server["host"] == "user_code"
    assert int(option_value(user_code, "-p", "--port")) == server["port"] == 4000
    assert option_value(user_code, "-h", "--host") == "0.0.0.0"
    repo_workspace = load_yaml(REPO / "workspace.yaml")
    names = [e["python_file"]["location_name"] for e in repo_workspace["load_from"]]
    assert server["location_name"] in names
    assert option_value(user_code, "-f", "--python-file") == "pipelines/definitions.py"

    for name in ("webserver", "daemon"):
        command = rendered[name]["command"]
        assert option_value(command, "-w", "--workspace") == f"{APP}/workspace.yaml"
    webserver = rendered["webserver"]
    assert webserver["ports"] == [f"127.0.0.1:{option_value(webserver['command'], '-p')}:3000"]

    mlflow = rendered["mlflow"]
    port = option_value(mlflow["command"], "--port")
    tracking = urlsplit(rendered["user_code"]["environment"]["MLFLOW_TRACKING_URI"])
    assert str(tracking.port) == port
    assert mlflow["ports"] == [f"127.0.0.1:{port}:{port}"]
    # MLflow refuses Host headers it does not know (403): the name the services use must be
    # allowed
    allowed = option_value(mlflow["command"], "--allowed-hosts").split(",")
    assert f"{tracking.hostname}:{tracking.port}" in allowed


def test_mlflow_server_is_configured_as_the_tests_run_it(rendered):
    import inspect

    import services as native

    native_flags = set(re.findall(r'"(--[a-z-]+)"', inspect.getsource(native.MlflowServer)))
    command = rendered["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    for flag in ("--backend-store-uri", "--serve-artifacts", "--artifacts-destination"):
        assert flag in native_flags, f"tests/services.py no longer passes {flag}"
        assert flag in command
    backend = urlsplit(option_value(command, "--backend-store-uri"))
    # the driver named, as tests/test_production_stores.py does (psycopg 3)
    assert (backend.scheme, backend.hostname, backend.path) == (
        "postgresql+psycopg",
        "postgres",
        "/mlflow",
    )
    artifacts = option_value(command, "--artifacts-destination")
    bucket = urlsplit(rendered["user_code"]["environment"]["RISK_ASSETS_OBJECT_STORE"]).netloc
    assert artifacts == f"s3://{bucket}/mlflow"
    env = rendered["mlflow"]["environment"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == rendered["user_code"]["environment"]["AWS_ENDPOINT_URL"]
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_postgres_init_creates_the_databases_the_services_use(rendered):
    sql = (DOCKER / "postgres" / "init-databases.sql").read_text()
    created = set(re.findall(r"'CREATE DATABASE (\w+)'", sql))
    assert created == {"dagster", "mlflow", "audit"}
    mount = rendered["postgres"]["volumes"][1]
    assert mount.startswith("./postgres/init-databases.sql:/docker-entrypoint-initdb.d/")


# Each command is parsed by the real command-line interface installed in this environment
# (click's parser, as the process in the container would): unknown options, missing values
# and wrong types fail. Paths inside the image are mapped to the files the image copies.
_PARSE = r"""
import json, sys
from importlib.metadata import entry_points
import click

errors = {}
for argv in json.loads(sys.argv[1]):
    ep = next(iter(entry_points(group="console_scripts", name=argv[0])))
    cmd, args, name = ep.load(), list(argv[1:]), argv[0]
    if not isinstance(cmd, click.Command):  # a main() that calls the module's click `cli`
        cmd = getattr(sys.modules[cmd.__module__], "cli")
    try:
        while isinstance(cmd, click.Group):
            sub = cmd.get_command(click.Context(cmd), args[0])
            if sub is None:
                raise click.UsageError(f"no command {args[0]!r} in {name}")
            cmd, name, args = sub, f"{name} {args[0]}", args[1:]
        cmd.make_context(name, args)
    except click.ClickException as exc:
        errors[" ".join(argv)] = exc.format_message()
print(json.dumps(errors))
"""


def test_every_command_parses_with_the_installed_clis(rendered):
    local = {
        f"{APP}/workspace.yaml": str(DOCKER / "workspace.yaml"),
        f"{APP}/celery.yaml": str(DOCKER / "celery.yaml"),
        f"{APP}/create_bucket.py": str(DOCKER / "create_bucket.py"),
    }
    commands = []
    for name in ("mlflow", "user_code", "webserver", "daemon", "celery_worker"):
        commands.append([local.get(token, token) for token in rendered[name]["command"]])
    healthcheck = rendered["user_code"]["healthcheck"]["test"][1:]
    commands.append(healthcheck)
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, json.dumps(commands)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    assert errors == {}
    assert int(option_value(healthcheck, "-p")) == 4000


def test_workspace_file_is_valid_for_dagster():
    from dagster._core.workspace.config_schema import ensure_workspace_config

    path = DOCKER / "workspace.yaml"
    ensure_workspace_config(load_yaml(path), str(path))


def test_celery_worker_config_reads_broker_and_backend_from_the_environment(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("RISK_ASSETS_CELERY_BROKER", "redis://:pw@redis:6379/0")
    monkeypatch.setenv("RISK_ASSETS_CELERY_BACKEND", "redis://:pw@redis:6379/1")
    config = get_validated_config(str(DOCKER / "celery.yaml"))
    assert config["broker"] == "redis://:pw@redis:6379/0"
    assert config["backend"] == "redis://:pw@redis:6379/1"
    assert "pw" not in (DOCKER / "celery.yaml").read_text()


def test_bucket_creation_against_an_s3_api(monkeypatch, capsys):
    moto_server = pytest.importorskip("moto.server")
    sys.path.insert(0, str(DOCKER))
    try:
        import create_bucket
    finally:
        sys.path.remove(str(DOCKER))
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "RISK_ASSETS_OBJECT_STORE": "s3://risk-assets-test/state",
        }.items():
            monkeypatch.setenv(key, value)
        assert create_bucket.main([]) == 0
        assert create_bucket.main([]) == 0  # idempotent
        err = capsys.readouterr().err
        assert "risk-assets-test: created" in err and "risk-assets-test: exists" in err
        monkeypatch.setenv("RISK_ASSETS_OBJECT_STORE", "/tmp/state")
        with pytest.raises(SystemExit, match="not an s3://"):
            create_bucket.main([])
    finally:
        server.stop()


# --- the image ------------------------------------------------------------------------


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_dockerfile_installs_the_extras_the_services_need_with_the_constraints():
    text = dockerfile()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    extras = re.search(r"^ARG EXTRAS=(\S+)$", text, re.M).group(1).split(",")
    assert {"postgres", "s3", "celery"} <= set(extras)
    install = re.search(r"^RUN pip install (.+?)(?:\\|$)", text, re.M).group(1)
    assert "-c constraints/test.txt" in install and '".[${EXTRAS}]"' in install
    assert "COPY constraints/test.txt" in text

    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]

    def names(extra: str) -> set[str]:
        return {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower() for req in optional[extra]}

    installed = set().union(*(names(e) for e in extras))
    # instance storage, object store and MLflow's artefacts, celery workers
    assert {"dagster-postgres", "psycopg", "s3fs", "boto3", "dagster-celery"} <= installed
    constraints = (REPO / "constraints" / "test.txt").read_text().lower()
    for name in ("dagster-postgres", "s3fs", "boto3", "dagster-celery", "mlflow", "dagster"):
        assert re.search(rf"^{name}==", constraints, re.M), f"{name} is not pinned"


def test_dockerfile_runs_the_grpc_server_as_an_unprivileged_user(services):
    text = dockerfile()
    assert "DAGSTER_HOME=/opt/dagster/home" in text
    assert re.search(r"^COPY .*docker/dagster\.yaml /opt/dagster/home/dagster\.yaml$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    cmd = json.loads(re.search(r"^CMD (\[.+\])$", text, re.M).group(1))
    assert cmd == services["user_code"]["command"]
    assert re.search(rf"^WORKDIR {APP}$", text, re.M)
    copied = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M)
    sources = {src for line in copied for src in line.split()}
    assert {"pipelines", "expectations", "docker/workspace.yaml", "docker/celery.yaml"} <= sources
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"
    assert sources <= allowed, f"COPY of files the context leaves out: {sources - allowed}"


def test_the_specs_files_are_in_the_image():
    """Every file a shipped spec names resolves inside a folder the image copies."""
    text = dockerfile()
    copied = {Path(p) for p in re.findall(r"^COPY (pipelines|expectations) ", text, re.M)}
    for spec in sorted((REPO / "pipelines").glob("*.yaml")):
        data = load_yaml(spec)
        paths = [data.get("expectations"), data.get("policy")]
        paths += [(data.get(k) or {}).get("path") for k in ("source", "serving_source")]
        for rel in filter(None, paths):
            target = (spec.parent / rel).resolve()
            assert target.exists(), f"{spec.name}: {rel} does not exist"
            top = Path(target.relative_to(REPO).parts[0])
            assert top in copied, f"{spec.name}: {rel} is outside the image"


# --- Kubernetes -----------------------------------------------------------------------

# the top-level keys of the chart's values (DagsterHelmValues in helm/dagster/schema)
CHART_KEYS = {
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "global",
    "retention",
    "concurrency",
    "additionalInstanceConfig",
}


def test_helm_values_name_the_image_the_run_launcher_and_the_env_secret():
    values = load_yaml(DOCKER / "k8s" / "values.yaml")
    assert set(values) <= CHART_KEYS, set(values) - CHART_KEYS
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert {"name": "risk-assets-env"} in launcher["envSecrets"]
    user = values["dagster-user-deployments"]
    assert user["enabled"] is True
    (deployment,) = user["deployments"]
    assert deployment["image"]["repository"] and deployment["image"]["tag"]
    assert deployment["port"] == 4000
    assert deployment["dagsterApiGrpcArgs"][:2] == ["--python-file", "pipelines/definitions.py"]
    assert deployment["env"]["RISK_ASSETS_EXECUTOR"] == "k8s"
    assert {"name": "risk-assets-env"} in deployment["envSecrets"]
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["postgresql"]["postgresqlPassword"] == ""
    # the pools of docker/dagster.yaml
    instance = load_yaml(DOCKER / "dagster.yaml")
    pools = values["concurrency"]["pools"]
    assert pools["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert pools["granularity"] == instance["concurrency"]["pools"]["granularity"]


def test_k8s_celery_workers_run_the_compose_worker_command(services):
    manifest = load_yaml(DOCKER / "k8s" / "celery-worker.yaml")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["command"] == services["celery_worker"]["command"]
    values = load_yaml(DOCKER / "k8s" / "values.yaml")
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    assert {"secretRef": {"name": "risk-assets-env"}} in container["envFrom"]
    instance_vars = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER"}
    instance_vars |= {"DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    assert instance_vars <= {e["name"] for e in container["env"]}


# --- docker compose itself, when installed ---------------------------------------------


def test_docker_compose_config_accepts_the_file(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (docker compose version failed)")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled_env().items()))
    for profile in ([], ["--profile", "celery"]):
        result = subprocess.run(
            [docker, "compose", "-f", str(DOCKER / "compose.yaml")]
            + ["--env-file", str(env_file), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
