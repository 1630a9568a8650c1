"""Identity and permissions against a real ``mlflow server --app-name basic-auth`` on loopback.

The server keeps its runs, registry and artefacts in a temporary folder and its users in
its own SQLite database; everyone gets READ by default. The admin creates the users
``pipeline``, ``alice``, ``bob`` and ``carol`` and the production model ``credit_risk``, on
which alice and carol may write (EDIT). The pipeline runs as ``pipeline``: it creates its
experiment and ``credit_risk-candidates`` and so owns them (MLflow gives their creator
MANAGE), and it cannot write ``credit_risk``. Then the decisions: bob, who may only read,
is refused before anything is recorded, and so is the pipeline identity; alice's approval
promotes, vouched for by the server.

What a promotion writes besides the production model: the production version is listed on
the candidate's LoggedModel, and the risk report is logged again on the candidate's run
(writes to the pipeline's experiment). alice has EDIT on the experiment; carol has not,
and her promotion still completes: only those two listings are left as they were.

The maker of a challenger is the MLflow user the pipeline was signed in as (its run's
``mlflow.user``), so maker-checker refuses the pipeline identity's own approval.

The audit trail is a local file, independent of MLflow. In CI (``CI=true``) and locally a
server that cannot start is a failure; the basic-auth app needs Flask-WTF (``mlflow[auth]``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_pipeline, using_state
from risk_assets.audit import open_audit_log
from risk_assets.cli import main
from risk_assets.registry._mlflow import audit_anchors, find_champion

BIN = Path(sys.executable).parent
ADMIN = ("admin", "admin-password-1")
PASSWORDS = {
    "pipeline": "pipeline-password-1",
    "alice": "alice-password-1",
    "bob": "bob-password-1",
    "carol": "carol-password-1",
}
CANDIDATES = "credit_risk-candidates"
#: Variables of the calling shell that would change who the server or a client is.
_IDENTITY_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_AUTH_CONFIG_PATH",
    "RISK_ASSETS_HOME",
    "DAGSTER_HOME",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(root: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` with the basic-auth app on loopback; returns once it answers."""
    import urllib.request

    if importlib.util.find_spec("flask_wtf") is None:
        pytest.fail("mlflow's basic-auth app needs Flask-WTF: pip install 'mlflow[auth]'")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # every request checks the password (a slow hash) unless the check is cached
        "auth_cache_ttl_seconds = 300\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in _IDENTITY_VARS}
    env.update(
        {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "risk-assets-test-secret",  # CSRF, required
            # no job-execution store in /dev/shm that would outlive the server
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    cmd = [str(BIN / "mlflow"), "server", "--app-name", "basic-auth"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    cmd += ["--serve-artifacts", "--artifacts-destination", str(root / "artifacts")]
    log = root / "mlflow-server.log"
    with log.open("w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:  # /health answers without credentials; everything else asks for them
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200 and proc.poll() is None:  # ours, still running
                    return proc
        except OSError:
            pass
        time.sleep(0.25)
    _stop(proc)
    pytest.fail(f"mlflow server did not answer on port {port}: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # the server stops its uvicorn worker
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def _signed_in(user: str) -> Iterator[None]:
    """MLflow's clients in this process send ``user``'s credentials (basic auth)."""
    password = ADMIN[1] if user == ADMIN[0] else PASSWORDS[user]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", user)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", password)
        yield


def _client(uri: str):
    """An MLflow client of the server at ``uri`` (not read from MLFLOW_TRACKING_URI, which
    MLflow unsets after a call that used a tracking URI temporarily)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _permission(uri: str, user: str, resource_type: str, resource_id: str) -> str:
    """``user``'s permission on a resource as the server resolves it (asked as the admin)."""
    from mlflow.server.auth.client import AuthServiceClient

    with _signed_in(ADMIN[0]):
        auth = AuthServiceClient(uri)
        return auth.get_user_permission(user, resource_type, resource_id).permission


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The auth-enabled server, its users and grants, and a medium-tier pipeline (one
    approval) run on it as ``pipeline`` with its own state folder."""
    from mlflow.server.auth.client import AuthServiceClient

    root = tmp_path_factory.mktemp("mlflow-auth")
    (root / "server").mkdir()
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = _start_server(root / "server", port)
    try:
        with using_state(root / "state") as env, pytest.MonkeyPatch.context() as mp:
            for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                mp.delenv(var, raising=False)
            mp.setenv("MLFLOW_TRACKING_URI", uri)
            with _signed_in(ADMIN[0]):
                auth = AuthServiceClient(uri)
                for user, password in PASSWORDS.items():
                    auth.create_user(user, password)
                _client(uri).create_registered_model(
                    "credit_risk", description="Production model credit_risk (risk-assets)"
                )
                for user in ("alice", "carol"):
                    auth.grant_user_permission(user, "registered_model", "credit_risk", "EDIT")

            spec = make_pipeline(root / "p", policy={"tier": "medium", "promotion": {}})
            out = io.StringIO()
            with _signed_in("pipeline"), contextlib.redirect_stdout(out):
                code = main(["run", str(spec), "--json"])
            lines = out.getvalue().strip().splitlines()
            payload = json.loads(lines[-1]) if lines else {}

            with _signed_in("pipeline"):
                mv = _client(uri).get_model_version(CANDIDATES, "1")
                experiment_id = _client(uri).get_run(mv.run_id).info.experiment_id
            # the promotion writes to the pipeline's experiment too (module docstring)
            with _signed_in(ADMIN[0]):
                auth.grant_user_permission("alice", "experiment", experiment_id, "EDIT")
            yield {
                "uri": uri,
                "env": env,
                "code": code,
                "payload": payload,
                "spec": spec,
                "run_id": mv.run_id,
                "experiment_id": experiment_id,
            }
    finally:
        _stop(proc)


@pytest.fixture(autouse=True)
def on_server(server, monkeypatch) -> None:
    """Each test on the server's stores and the pipeline's state folder, signed in as nobody."""
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    for var, value in server["env"].items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])


def _approve(capsys, uri: str, user: str) -> tuple[int, dict]:
    """``risk-assets approve credit_risk 1 --json`` signed in to MLflow as ``user``."""
    capsys.readouterr()
    with _signed_in(user), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        code = main(["approve", "credit_risk", "1", "--reason", f"reviewed by {user}", "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {}


def _decisions() -> list[tuple[str, str, str]]:
    """The audit trail's records other than gate verdicts: (action, actor, model/version)."""
    return [
        (r.action, r.actor, f"{r.model}/{r.version}")
        for r in open_audit_log().records()
        if r.action != "gate"
    ]


def _production_versions(uri: str) -> list[str]:
    with _signed_in("pipeline"):
        found = _client(uri).search_model_versions("name = 'credit_risk'")
    return sorted((str(v.version) for v in found), key=int)


def test_the_pipeline_identity_registers_a_challenger_it_owns(server):
    assert server["code"] == 0, server["payload"]
    assert server["payload"]["candidate"] == {
        "model": CANDIDATES,
        "version": "1",
        "aliases": ["challenger"],
    }
    # medium tier: nothing is promoted without an approval
    assert _production_versions(server["uri"]) == []
    assert [(action, what) for action, _, what in _decisions()] == [
        ("registration", f"{CANDIDATES}/1")
    ]
    # MLflow made the pipeline identity the owner of what it created, and nothing more
    assert _permission(server["uri"], "pipeline", "registered_model", CANDIDATES) == "MANAGE"
    assert _permission(server["uri"], "pipeline", "experiment", server["experiment_id"]) == "MANAGE"
    assert _permission(server["uri"], "pipeline", "registered_model", "credit_risk") == "READ"
    assert _permission(server["uri"], "alice", "registered_model", "credit_risk") == "EDIT"
    assert _permission(server["uri"], "bob", "registered_model", "credit_risk") == "READ"
    assert _permission(server["uri"], "bob", "registered_model", CANDIDATES) == "READ"
    assert _permission(server["uri"], "alice", "experiment", server["experiment_id"]) == "EDIT"
    assert _permission(server["uri"], "carol", "experiment", server["experiment_id"]) == "READ"


def test_the_pipeline_identity_cannot_write_the_production_model(server):
    from mlflow.exceptions import MlflowException

    with _signed_in("pipeline"):
        client = _client(server["uri"])
        with pytest.raises(MlflowException) as copied:
            client.copy_model_version(f"models:/{CANDIDATES}/1", "credit_risk")
        with pytest.raises(MlflowException) as aliased:
            client.set_registered_model_alias("credit_risk", "champion", "1")
    # MLflow wraps the refused copy in an INTERNAL_ERROR ("the current model registry
    # backend may not yet support model version URI sources"); the refusal is its cause
    cause = copied.value.__cause__
    assert cause is not None and cause.error_code == "PERMISSION_DENIED", copied.value
    assert cause.get_http_status_code() == 403 and "Permission denied" in str(cause)
    assert aliased.value.error_code == "PERMISSION_DENIED", aliased.value
    assert _production_versions(server["uri"]) == []


def test_an_approver_mlflow_refuses_is_refused_before_anything_is_recorded(server, capsys):
    before = _decisions()
    code, out = _approve(capsys, server["uri"], "bob")
    assert code == 4, out
    assert "MLflow refuses bob write access to the production model credit_risk" in out["error"]
    assert "permission denied" in out["error"] and "not recorded" in out["error"]
    assert _decisions() == before  # no approval by bob, no promotion
    with _signed_in("bob"):
        assert find_champion(_client(server["uri"]), "credit_risk") is None
    assert _production_versions(server["uri"]) == []


def test_the_pipeline_identity_cannot_approve_its_own_challenger(server, capsys):
    before = _decisions()
    code, out = _approve(capsys, server["uri"], "pipeline")
    # refused by maker-checker (the maker is the server identity), and MLflow's permissions
    # would refuse it too (see test_the_pipeline_identity_cannot_write_production)
    assert code == 4 and "maker-checker" in out["error"], out
    assert _decisions() == before
    assert _production_versions(server["uri"]) == []


def test_the_maker_is_the_server_identity(server, capsys):
    """Maker-checker against the server: the maker is the MLflow user the pipeline was
    signed in as, recorded as the run's ``mlflow.user`` and as the actor of its audit
    records."""
    with _signed_in("pipeline"):
        run = _client(server["uri"]).get_run(server["run_id"])
    assert run.data.tags.get("mlflow.user") == "pipeline"
    registrations = [d for d in _decisions() if d[0] == "registration"]
    assert registrations == [("registration", "pipeline", f"{CANDIDATES}/1")]


def test_an_approver_mlflow_allows_promotes_and_the_server_vouches_for_her(server, capsys):
    code, out = _approve(capsys, server["uri"], "alice")
    assert code == 0 and out["action"] == "promotion", out
    assert out["production_version"] == "credit_risk/1"
    assert out["actor"] == "alice" and out["advisory"] is None  # the server vouches
    with _signed_in("bob"):  # anyone may read it
        client = _client(server["uri"])
        champion = find_champion(client, "credit_risk")
        assert champion is not None and str(champion.version) == "1"
        assert champion.tags["risk_assets.promoted_by"] == "alice"
        assert champion.tags["risk_assets.candidate_version"] == f"{CANDIDATES}/1"
        anchors = audit_anchors(client)
    decisions = _decisions()
    assert decisions[1:] == [
        ("approval", "alice", f"{CANDIDATES}/1"),
        ("promotion", "alice", "credit_risk/1"),
    ]
    assert decisions[0] == ("registration", "pipeline", f"{CANDIDATES}/1")
    assert not any(actor == "bob" for _, actor, _ in decisions)
    verification = open_audit_log().verify(anchors=anchors)
    assert verification.ok, verification.render()


def test_an_approver_without_access_to_the_experiment_still_promotes_completely(server, capsys):
    """carol may write the production model but only read the pipeline's experiment: her
    promotion completes (version, tags, champion, audit record); only what MLflow's UI shows
    on the candidate's logged model and run (its version listing, the re-made report),
    which she may not write, is left as it was."""
    with _signed_in("pipeline"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server["uri"])
        assert main(["run", str(server["spec"])]) == 0  # a second challenger
    capsys.readouterr()
    with _signed_in("carol"), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", server["uri"])
        code = main(["approve", "credit_risk", "2", "--reason", "reviewed by carol", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["action"] == "promotion", out
    assert out["production_version"] == "credit_risk/2" and out["advisory"] is None
    with _signed_in("carol"):
        client = _client(server["uri"])
        champion = find_champion(client, "credit_risk")
        assert str(champion.version) == "2"
        assert champion.tags["risk_assets.promoted_by"] == "carol"
        run = client.get_run(champion.run_id)
        model_id = run.data.tags["risk_assets.logged_model_id"]
        listed = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert {"name": "credit_risk", "version": "2"} not in listed  # carol may not write it
    decisions = _decisions()
    assert ("approval", "carol", f"{CANDIDATES}/2") in decisions
    assert ("promotion", "carol", "credit_risk/2") in decisions
    assert _production_versions(server["uri"]) == ["1", "2"]
