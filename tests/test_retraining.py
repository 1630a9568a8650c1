"""Retraining operations on a real Dagster instance: a backfill of monthly partitions, scoring
with the champion, monitoring checks, the retraining sensor and its webhook alert.

One module-scoped scenario runs the shipped ``credit_risk_monthly`` pipeline through the CLI
(in-process), as the README's demo does: a training backfill over 2025-01..2025-06, then a
monitoring backfill over 2025-07..2025-12 (the months 2025-10..12 carry an injected drift)
that executes the sensor's requests.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

from conftest import PIPELINES, using_state
from risk_assets.cli import main
from risk_assets.dagster._sensors import plan_retraining
from risk_assets.errors import ConfigError, DataError, GateEvidenceError, SpecError

MONTHLY_SPEC = PIPELINES / "credit_risk_monthly.yaml"
MONTHLY_POLICY = PIPELINES / "policies" / "credit_risk_monthly.yaml"
TRAINED = [f"2025-{m:02d}" for m in range(1, 7)]
MONITORED = [f"2025-{m:02d}" for m in range(7, 13)]
DRIFTED = ["2025-10", "2025-11", "2025-12"]  # see pipelines/data/README.md


class _Webhook:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def monthly(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("monthly")
    hook = _Webhook()
    with using_state(state), pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISK_ASSETS_ALERT_WEBHOOK", hook.url)
        train_code, training = _cli(
            "backfill", str(MONTHLY_SPEC), "--from", TRAINED[0], "--to", TRAINED[-1]
        )
        monitor_code, monitoring = _cli(
            "backfill",
            str(MONTHLY_SPEC),
            "--from",
            MONITORED[0],
            "--to",
            MONITORED[-1],
            "--monitor",
            "--retrain",
        )
        try:
            yield SimpleNamespace(
                state=state,
                instance=dg.DagsterInstance.get(),
                train_code=train_code,
                training=training,
                monitor_code=monitor_code,
                monitoring=monitoring,
                alerts=hook.received,
                hook=hook,
            )
        finally:
            hook.close()


def _client():
    from mlflow import MlflowClient

    from risk_assets.settings import current_settings

    s = current_settings()
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)


def _policy_params(risk_id: str) -> dict:
    policy = yaml.safe_load(MONTHLY_POLICY.read_text())
    return next(r for r in policy["risks"] if r["id"] == risk_id)["control"]["params"]


def test_a_backfill_trains_and_gates_every_partition(monthly):
    assert monthly.train_code == 0
    assert monthly.training["mode"] == "in-process"
    runs = monthly.training["partitions"]
    assert [r["partition"] for r in runs] == TRAINED
    assert {r["status"] for r in runs} <= {"registered", "blocked"}
    registered = [r for r in runs if r["status"] == "registered"]
    assert registered, "no window of the backfill passed its gates"
    # each partition's data was snapshotted and gated on its own, in a run of its own
    for check in ("meets_expectations", "pii_free"):
        key = dg.AssetCheckKey(dg.AssetKey(["credit_risk_monthly", "validated_data"]), check)
        history = monthly.instance.event_log_storage.get_asset_check_execution_history(
            key, limit=100
        )
        assert set(TRAINED) <= {r.partition for r in history}
    # a blocked partition names the gates that stopped it
    for r in runs:
        if r["status"] == "blocked":
            assert r["blocked_by"]
    # a blocked month is a verdict, not a crash: every run of the backfill succeeded, and
    # only the registered months have a registered_model partition (none "failed")
    statuses = {run.status for run in monthly.instance.get_runs()}
    assert statuses == {dg.DagsterRunStatus.SUCCESS}, statuses
    key = dg.AssetKey(["credit_risk_monthly", "registered_model"])
    materialised = monthly.instance.get_materialized_partitions(key)
    trained = {r["partition"] for r in registered}
    assert trained <= materialised
    assert not materialised & {r["partition"] for r in runs if r["status"] == "blocked"}


def test_each_version_carries_its_partition_and_window(monthly, monkeypatch):
    from risk_assets.registry._mlflow import lineage

    last = next(r for r in reversed(monthly.training["partitions"]) if r["status"] == "registered")
    with using_state(monthly.state):
        info = lineage(_client(), f"{last['model']}/{last['version']}")
    part = last["partition"]
    assert info["run"]["partition"] == part
    keys = TRAINED[: TRAINED.index(part) + 1][-6:]
    assert [w["partition"] for w in info["window"]["partitions"]] == keys
    assert info["window"]["span"] == f"{keys[0]}..{keys[-1]} ({len(keys)} partitions)"
    # the window's data gates are summarised over its partitions
    gates = {g["name"]: g for g in info["gates"]}
    assert gates["meets_expectations"]["summary"].startswith(
        f"{len(keys)} of {len(keys)} partitions of the window passed"
    )


def test_registration_verifies_every_partition_of_the_window(monthly):
    """A window record changed after training, or one naming a failed partition, is refused."""
    import tempfile

    from risk_assets.policy import load_policy
    from risk_assets.registry._mlflow import WINDOW_ARTIFACT, log_window, verify_gate_evidence

    run_id = next(
        r for r in reversed(monthly.training["partitions"]) if r["status"] == "registered"
    )["candidate"]
    with using_state(monthly.state):
        client = _client()
        mv = client.get_model_version(run_id["model"], run_id["version"])
        lp = load_policy(MONTHLY_POLICY)
        kwargs = {"policy": lp.policy, "policy_sha256": lp.sha256}
        verify_gate_evidence(client, mv.run_id, **kwargs)  # the evidence as recorded passes
        with tempfile.TemporaryDirectory() as tmp:
            doc = json.loads(
                Path(client.download_artifacts(mv.run_id, WINDOW_ARTIFACT, tmp)).read_text()
            )
        victim = doc["partitions"][0]
        victim["gates"]["pii_free"]["passed"] = False
        victim["gates"]["pii_free"]["summary"] = "injected failure"
        new_sha = log_window(client, mv.run_id, doc)  # overwrites the artefact
        with pytest.raises(GateEvidenceError, match="changed since training"):
            verify_gate_evidence(client, mv.run_id, **kwargs)
        client.set_tag(mv.run_id, "risk_assets.window_sha256", new_sha)
        with pytest.raises(GateEvidenceError) as err:
            verify_gate_evidence(client, mv.run_id, **kwargs)
        assert f"pii_free (PRIV-001) in partition {victim['partition']}: failed" in str(err.value)


def test_batches_are_scored_by_the_champion_and_monitored(monthly):
    assert monthly.monitor_code == 0
    runs = {r["partition"]: r for r in monthly.monitoring["partitions"]}
    assert list(runs) == MONITORED
    for key, run in runs.items():
        assert run["champion"].startswith("credit_risk_monthly/")
        gates = {g["name"]: g for g in run["gates"]}
        # the delayed labels of every demo month have arrived: performance was measured
        assert gates["performs_on_outcomes"]["passed"] is not None
        if key not in DRIFTED:
            assert run["status"] == "passed", run
    with using_state(monthly.state):
        from risk_assets.registry._snapshots import SnapshotStore
        from risk_assets.settings import current_settings

        store = SnapshotStore(current_settings().snapshot_dir)
        record = monthly.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(["credit_risk_monthly", "scored_batch"]),
                asset_partitions=["2025-07"],
            ),
            limit=1,
        ).records[0]
        md = record.asset_materialization.metadata
        predictions = store.get(md["risk/predictions_sha256"].value)
    batch = (PIPELINES / "data" / "monthly" / "applications_2025-07.csv").read_text()
    assert len(predictions) == len(batch.strip().splitlines()) - 1
    assert set(predictions.columns) == {"application_id", "prediction", "score"}
    assert md["risk/favourable"].value == int((predictions["prediction"] == 1).sum())


def test_injected_drift_is_caught_and_retraining_requested_once(monthly):
    runs = {r["partition"]: r for r in monthly.monitoring["partitions"]}
    for key in DRIFTED:
        assert runs[key]["status"] == "flagged"
        assert "no_input_drift" in runs[key]["flagged_by"]
    training = [
        r for r in monthly.monitoring["retraining"] if r["job"] == "credit_risk_monthly_job"
    ]
    # one drift episode (2025-10..12): exactly one retraining, for the window ending 2025-10
    assert [r["partition"] for r in training] == ["2025-10"]
    assert training[0]["outcome"]["status"] in ("registered", "blocked")
    # the window's months that were only scored so far had their data gated first
    data = [
        r["partition"] for r in monthly.monitoring["retraining"] if r["job"].endswith("_data_job")
    ]
    assert data == ["2025-07", "2025-08", "2025-09"]
    assert len(monthly.alerts) == 1
    alert = monthly.alerts[0]
    assert alert["event"] == "retraining_requested"
    assert alert["partition"] == "2025-10" and alert["window"] == ["2025-05", "2025-10"]
    assert "no_input_drift" in alert["failed_checks"]
    # the sensor asks nothing more on later ticks, and alerts nothing more
    from risk_assets.dagster._runner import tick_retraining_sensor

    with using_state(monthly.state):
        requests, skip = tick_retraining_sensor(MONTHLY_SPEC, instance=monthly.instance)
    assert requests == [] and "no new drift episode (1 retraining(s)" in skip
    assert len(monthly.alerts) == 1


SENSOR = "credit_risk_monthly_retraining_sensor"


def test_the_runs_the_sensor_requested_carry_its_name_and_run_keys(monthly):
    """The CLI executes the sensor's requests tagged as the daemon tags the runs it launches:
    the sensor's name and the request's run key, so Dagster de-duplicates them."""
    reported = monthly.monitoring["retraining"]
    assert reported and all(r["run_key"] for r in reported)
    assert len({r["run_key"] for r in reported}) == len(reported)
    runs = monthly.instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": SENSOR}))
    by_key = {run.tags["dagster/run_key"]: run for run in runs}
    assert set(by_key) == {r["run_key"] for r in reported}
    training = by_key["retrain:2025-10"]
    assert training.job_name == "credit_risk_monthly_job"
    assert training.tags["risk_assets/retrain_of"] == "2025-10"
    assert training.tags["dagster/partition"] == "2025-10"
    for key in ("2025-07", "2025-08", "2025-09"):
        data = by_key[f"window-data:{key}:for:2025-10"]
        assert data.job_name == "credit_risk_monthly_data_job"
        assert data.tags["risk_assets/window_of"] == "2025-10"
        assert data.tags["dagster/partition"] == key
    # no state of the sensor outside the instance
    assert not (monthly.state / "sensors").exists()


def _daemon_tick(instance: dg.DagsterInstance):
    """Start the retraining sensor and evaluate it once with Dagster's own sensor daemon
    code, on the instance's stored sensor state (the code location loaded in process, as
    ``dagster dev -w workspace.yaml`` names it)."""
    import logging
    import sys

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            python_file=str(PIPELINES / "definitions.py"),
            working_directory=str(PIPELINES.parent),
        ),
        location_name="risk_assets_pipelines",
    )
    target = InProcessWorkspaceLoadTarget(origin)
    with create_test_daemon_workspace_context(target, instance) as workspace:
        location = workspace.create_request_context().get_code_location("risk_assets_pipelines")
        repo = next(iter(location.get_repositories().values()))
        sensor = repo.get_sensor(SENSOR)
        state = instance.start_sensor(sensor)
        assert state.instigator_data.cursor is None  # nothing stored beside the runs
        list(execute_sensor_iteration(workspace, logging.getLogger(__name__), None, None))
        return instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)[0]


def test_turning_the_sensor_on_after_the_cli_requests_nothing_already_done(monthly):
    """After ``backfill --monitor --retrain``, the daemon evaluates the sensor (turned on as
    the README says): no second retraining, no second alert."""
    from dagster._core.scheduler.instigation import TickStatus

    before = monthly.instance.get_runs_count()
    with using_state(monthly.state):
        tick = _daemon_tick(monthly.instance)
    assert tick.status == TickStatus.SKIPPED, tick.error
    assert "no new drift episode (1 retraining(s)" in tick.skip_reason
    assert tick.run_ids == [] and tick.run_keys == []
    assert monthly.instance.get_runs_count() == before
    assert len(monthly.alerts) == 1


def test_a_monitoring_backfill_without_retrain_leaves_the_requests_to_the_daemon(
    tmp_path, monkeypatch
):
    """``backfill --monitor`` lists the sensor's requests (alerting once per episode, not
    once per tick); the daemon, turned on afterwards, launches them with no second alert,
    and a later evaluation waits for those runs instead of asking again."""
    from dagster._core.scheduler.instigation import TickStatus

    from risk_assets.dagster._runner import tick_retraining_sensor

    hook = _Webhook()
    monkeypatch.setenv("RISK_ASSETS_ALERT_WEBHOOK", hook.url)
    window_data = {f"window-data:{k}:for:2025-10" for k in ("2025-07", "2025-08", "2025-09")}
    try:
        with using_state(tmp_path):
            spec = str(MONTHLY_SPEC)
            assert _cli("backfill", spec, "--from", TRAINED[0], "--to", TRAINED[-1])[0] == 0
            code, report = _cli(
                "backfill", spec, "--from", MONITORED[0], "--to", MONITORED[-1], "--monitor"
            )
            assert code == 0
            # listed after each flagged month of the episode, alerted once
            assert {r["run_key"] for r in report["retraining"]} == window_data
            assert len(hook.received) == 1
            instance = dg.DagsterInstance.get()
            by_sensor = dg.RunsFilter(tags={"dagster/sensor_name": SENSOR})
            assert instance.get_runs_count(by_sensor) == 0  # nothing ran
            tick = _daemon_tick(instance)
            assert tick.status == TickStatus.SUCCESS, tick.error
            assert set(tick.run_keys) == window_data
            queued = instance.get_runs(by_sensor)
            assert {run.tags["dagster/run_key"] for run in queued} == window_data
            assert {run.status for run in queued} == {dg.DagsterRunStatus.QUEUED}
            assert len(hook.received) == 1
            requests, skip = tick_retraining_sensor(MONTHLY_SPEC, instance=instance)
            assert requests == [] and "waits for the data runs" in skip
            assert len(hook.received) == 1
    finally:
        hook.close()


def test_decision_volume_flags_the_jump_in_denials(monthly):
    limit = _policy_params("MON-003")["max_rate_change"]
    runs = {r["partition"]: r for r in monthly.monitoring["partitions"]}
    flagged = []
    for key in MONITORED:
        gate = next(g for g in runs[key]["gates"] if g["name"] == "decision_volume_stable")
        assert gate["threshold"] == limit
        if gate["passed"] is False:
            assert gate["value"] > limit
            flagged.append(key)
    assert flagged and set(flagged) <= set(DRIFTED)


def test_policy_show_reports_the_monitoring_verdicts(monthly, capsys):
    """Monitoring verdicts live in the Dagster instance: policy show reads them there
    (not 'never run'), with the partitions that failed."""
    with using_state(monthly.state):
        assert main(["policy", "show", str(MONTHLY_SPEC), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    risk = next(r for r in doc["risks"] if r["control"] == "input_drift")
    assert risk["last_result"] == "FAILED"
    for key in DRIFTED:
        assert key in risk["last_summary"]
    assert f"of {len(MONITORED)} partitions failed" in risk["last_summary"]


def test_plan_retraining_one_request_per_episode_with_a_cool_down():
    order = [f"m{i:02d}" for i in range(12)]

    def verdicts(marks: str):
        return [
            (order[i], c == "P", [] if c == "P" else ["no_input_drift"])
            for i, c in enumerate(marks)
            if c != "."
        ]

    def plan(marks: str, cool_down: int) -> list[str]:
        return [
            r.partition for r in plan_retraining(verdicts(marks), order=order, cool_down=cool_down)
        ]

    assert plan("PPPFFFPP", 3) == ["m03"]
    assert plan("PFFPPPPFF", 3) == ["m01", "m07"]  # a second episode after the cool-down
    assert plan("PFPFPF", 3) == ["m01", "m05"]  # flapping: the cool-down holds requests back
    assert plan("PFPFPF", 0) == ["m01", "m03", "m05"]
    assert plan("PF..FF", 0) == ["m01"]  # partitions not evaluated do not end an episode
    assert plan("PPPP", 0) == []


def test_the_schedule_retrains_the_last_complete_partition():
    from risk_assets.dagster import build_definitions

    defs = build_definitions([MONTHLY_SPEC])
    schedule = defs.resolve_schedule_def("credit_risk_monthly_retraining_schedule")
    assert schedule.cron_schedule == "0 6 2 * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    at = datetime(2025, 9, 2, 6, tzinfo=UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=at, repository_def=defs.get_repository_def()
    ) as context:
        data = schedule.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests] == ["2025-08"]


def test_webhook_failures_are_reported_not_raised():
    from risk_assets.dagster import WebhookAlertResource

    hook = _Webhook()
    url = hook.url
    assert WebhookAlertResource(url=url).send({"summary": "x"}) is True
    assert hook.received == [{"summary": "x"}]
    hook.close()
    assert WebhookAlertResource(url=url, timeout_seconds=2).send({"summary": "y"}) is False


def _monthly_copy(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "pipelines"
    shutil.copytree(PIPELINES / "data" / "monthly", folder / "data" / "monthly")
    shutil.copytree(PIPELINES / "policies", folder / "policies")
    shutil.copytree(PIPELINES.parent / "expectations", tmp_path / "expectations")
    spec = yaml.safe_load(MONTHLY_SPEC.read_text())
    for key, value in changes.items():
        spec["source"][key] = value
    path = folder / "credit_risk_monthly.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_bad_partition_settings_are_named(tmp_path, state):
    from risk_assets.dagster._runner import run_pipeline
    from risk_assets.spec import load_spec

    with pytest.raises(SpecError, match=r"pattern must be a file name holding \{partition\}"):
        load_spec(_monthly_copy(tmp_path / "a", pattern="applications.csv"))
    with pytest.raises(SpecError, match="is not a monthly partition key"):
        load_spec(_monthly_copy(tmp_path / "b", partitions={"scheme": "monthly", "start": "2025"}))
    spec = _monthly_copy(tmp_path / "c")
    with pytest.raises(
        ConfigError, match="partition '2026-01' is not one of the spec's partitions"
    ):
        run_pipeline(spec, partition="2026-01", log_to_console=False)
    with pytest.raises(ConfigError, match="name a partition"):
        run_pipeline(spec, log_to_console=False)
    (spec.parent / "data" / "monthly" / "outcomes_2025-03.csv").unlink()
    with pytest.raises(DataError, match=r"outcomes_2025-03.csv: the labels of partition 2025-03"):
        run_pipeline(spec, partition="2025-03", log_to_console=False)


def test_monitoring_controls_need_a_partitioned_source(tmp_path):
    from conftest import CREDIT_SPEC
    from risk_assets.dagster import load_pipeline

    policy = yaml.safe_load(MONTHLY_POLICY.read_text())
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    spec = yaml.safe_load(CREDIT_SPEC.read_text())
    spec["policy"] = str(tmp_path / "policy.yaml")
    for key in ("expectations",):
        spec[key] = str((CREDIT_SPEC.parent / spec[key]).resolve())
    spec["source"]["path"] = str((CREDIT_SPEC.parent / spec["source"]["path"]).resolve())
    spec["serving_source"]["path"] = str(
        (CREDIT_SPEC.parent / spec["serving_source"]["path"]).resolve()
    )
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"MON-001.*need a partitioned source"):
        load_pipeline(tmp_path / "spec.yaml")


def test_scoring_refuses_a_champion_whose_hash_does_not_match(monthly):
    """Last in this module: it changes the scenario's registry."""
    from risk_assets.dagster._runner import monitor_partition
    from risk_assets.registry._mlflow import find_champion

    with using_state(monthly.state):
        client = _client()
        champion = find_champion(client, "credit_risk_monthly")
        client.set_model_version_tag(
            champion.name, champion.version, "risk_assets.model_sha256", "0" * 64
        )
        outcome = monitor_partition(
            MONTHLY_SPEC, "2025-12", instance=monthly.instance, log_to_console=False
        )
    assert outcome.status == "error"
    assert "IntegrityError" in outcome.error or "SHA-256" in outcome.error


def test_the_cursor_of_an_earlier_version_is_honoured():
    """Earlier versions kept what they requested and alerted in the sensor's cursor (the
    CLI in a file): read on upgrade, so those episodes are neither retrained nor alerted
    again; a cursor of any other shape reads as nothing."""
    from risk_assets.dagster._sensors import legacy_cursor

    old = json.dumps({"alerted": ["2025-10"], "requested": ["2025-10", 7]})
    assert legacy_cursor(old) == {"alerted": ["2025-10"], "requested": ["2025-10"]}
    assert legacy_cursor(None) == {} and legacy_cursor("not json") == {}
    assert legacy_cursor("[1, 2]") == {}
