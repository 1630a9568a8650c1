"""What a person sees in the Dagster and MLflow UIs, in a real browser.

Debian's chromium (installed by ``scripts/test`` from Debian's packages; no browser
download) is driven by Playwright against a ``dagster-webserver`` and an ``mlflow ui`` on
loopback, both on the state of a run that a data gate blocked (undeclared e-mail
addresses: the PII gate). Screenshots go to ``$RISK_ASSETS_TEST_ARTIFACTS`` (default
``.test-artifacts/`` in the repository). Without chromium the tests skip, saying why; in
CI (``CI=true``) a missing browser is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from services import chromium_or_skip, dismiss_dagster_welcome

from conftest import CREDIT_DATA, ROOT, make_pipeline, mlflow_client, using_state

ARTIFACTS = Path(os.environ.get("RISK_ASSETS_TEST_ARTIFACTS") or ROOT / ".test-artifacts")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server and wait until it answers HTTP on ``port`` (fail after 120 s)."""
    import urllib.request

    with log.open("w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{cmd[0]} exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                if answer.status == 200 and proc.poll() is None:  # ours, still running
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    _stop(proc)
    raise AssertionError(f"{cmd[0]} did not answer on port {port}: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A run blocked by the PII gate and a run that registered (pipeline credit_clean),
    on their own state, with both UIs serving it."""
    chromium = chromium_or_skip()
    root = tmp_path_factory.mktemp("ui")
    data = pd.read_csv(CREDIT_DATA)
    data["contact"] = [f"applicant{i}@example.com" for i in range(len(data))]
    spec = make_pipeline(root / "pipeline", data=data)
    clean = make_pipeline(root / "clean", name="credit_clean")  # registers, with plots
    (root / "defs.py").write_text(
        "from risk_assets.dagster import build_definitions\n"
        f"defs = build_definitions([{str(spec)!r}, {str(clean)!r}])\n"
    )
    from risk_assets.cli import main

    dagster_port, mlflow_port = _free_port(), _free_port()
    with using_state(root / "state") as env, pytest.MonkeyPatch.context() as mp:
        # the links each UI gives to the other point at the servers below
        for name, port in (("MLFLOW_UI", mlflow_port), ("DAGSTER", dagster_port)):
            mp.setenv(f"RISK_ASSETS_{name}_URL", f"http://127.0.0.1:{port}")
        assert main(["run", str(spec)]) == 3  # blocked
        assert main(["run", str(clean)]) == 0  # registered
        client = mlflow_client()
        tracking = client.tracking_uri
        web = _serve(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(dagster_port)]
            + ["-f", str(root / "defs.py")],
            dagster_port,
            env,
            root / "dagster-webserver.log",
        )
        try:
            ui = _serve(
                [str(BIN / "mlflow"), "ui", "--backend-store-uri", tracking]
                + ["--host", "127.0.0.1", "--port", str(mlflow_port)],
                mlflow_port,
                # no job-execution store in /dev/shm that would outlive the server
                {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                root / "mlflow-ui.log",
            )
            try:
                yield {
                    "chromium": chromium,
                    "dagster": f"http://127.0.0.1:{dagster_port}",
                    "mlflow": f"http://127.0.0.1:{mlflow_port}",
                    "client": client,
                    "state": root / "state",
                }
            finally:
                _stop(ui)
        finally:
            _stop(web)


@pytest.fixture(scope="module")
def browser(blocked: dict) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=blocked["chromium"], args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _page(browser: object, url: str, wait_until: str = "networkidle") -> object:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until=wait_until)
    return page


def _screenshot(page: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dagster_shows_the_failed_gate_with_its_risk_figure_and_description(blocked, browser):
    url = f"{blocked['dagster']}/assets/credit_risk/validated_data?view=checks&checkDetail=pii_free"
    page = _page(browser, url)
    dismiss_dagster_welcome(page)
    page.get_by_text("[PRIV-001] Personal data in training data").first.wait_for(timeout=30_000)
    text = page.inner_text("body")
    shot = _screenshot(page, "dagster-pii-gate")
    assert "Failed" in text, shot
    assert "PRIV-001" in text and "risk/value" in text, shot  # the risk id and its figure
    assert "undeclared PII: contact (email, 100.0%)" in text, shot  # the verdict, named
    assert "applicant0@example.com" not in text, shot  # counts and shares, never values


def test_the_gate_links_to_the_mlflow_record_of_the_refusal(blocked, browser):
    """The failed data gate links to the MLflow run that records the refusal; following
    the link in the browser shows that run with its verdict and the gate that refused."""
    url = f"{blocked['dagster']}/assets/credit_risk/validated_data?view=checks&checkDetail=pii_free"
    page = _page(browser, url)
    dismiss_dagster_welcome(page)
    link = page.locator(f"a[href^='{blocked['mlflow']}/#/experiments/']").first
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href")
    run_id = href.rstrip("/").rsplit("/", 1)[-1]
    run = blocked["client"].get_run(run_id)
    assert run.data.tags.get("risk_assets.verdict") == "refused"

    mlflow_page = _page(browser, href, wait_until="load")  # the MLflow UI keeps polling
    mlflow_page.get_by_text("risk_assets.verdict").first.wait_for(timeout=60_000)
    text = mlflow_page.inner_text("body")
    shot = _screenshot(mlflow_page, "mlflow-refused-run")
    assert "refused" in text, shot
    assert "pii_free" in text, shot  # the description names the gate that refused


def test_a_gate_plot_is_shown_in_dagster_from_the_mlflow_artefact(blocked, browser):
    """A model gate's plot is an MLflow artefact of the candidate's run; its check in
    Dagster shows it as an image the MLflow UI serves."""
    url = (
        f"{blocked['dagster']}/assets/credit_clean/candidate_model"
        "?view=checks&checkDetail=fair_across_sex"
    )
    page = _page(browser, url)
    dismiss_dagster_welcome(page)
    row = page.locator("tr", has_text="risk/plot_image").first
    row.wait_for(timeout=30_000)
    dismiss_dagster_welcome(page)  # on a loaded machine it opens after the page has drawn
    row.get_by_text("Show Markdown").click()
    image = page.locator(f"img[src^='{blocked['mlflow']}/get-artifact']").first
    image.wait_for(timeout=30_000)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    shot = _screenshot(page, "dagster-gate-plot")
    assert image.evaluate("img => img.naturalWidth") >= 500, shot  # the 750 px wide plot


def test_checks_after_a_blocked_gate_read_as_not_evaluated(blocked, browser):
    """The model gates of the run the PII gate blocked were never evaluated: Dagster shows
    them as skipped, not as failed executions, and the run itself as a success tagged with
    its verdict and the gate that blocked it."""
    url = f"{blocked['dagster']}/assets/credit_risk/candidate_model?view=checks"
    page = _page(browser, url)
    dismiss_dagster_welcome(page)
    page.get_by_text("meets_metric_thresholds").first.wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    text = page.inner_text("body")
    shot = _screenshot(page, "dagster-checks-not-evaluated")
    assert "Execution failed" not in text, shot
    assert "Skipped" in text or "Not evaluated" in text, shot

    from dagster import DagsterInstance

    with using_state(blocked["state"]):
        runs = DagsterInstance.get().get_runs()
    (run,) = [r for r in runs if r.tags.get("risk_assets/verdict") == "blocked"]
    run_page = _page(browser, f"{blocked['dagster']}/runs/{run.run_id}")
    run_page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=30_000)
    dismiss_dagster_welcome(run_page)
    text = run_page.inner_text("body")
    shot = _screenshot(run_page, "dagster-blocked-run")
    assert "Success" in text and "RUN_FAILURE" not in text and "STEP_FAILURE" not in text, shot
    assert "DagsterAssetCheckFailedError" not in text, shot
    run_page.get_by_role("button", name="View tags and config").click()
    run_page.get_by_text("risk_assets/verdict").first.wait_for(timeout=30_000)
    text = run_page.inner_text("body")
    shot = _screenshot(run_page, "dagster-blocked-run-tags")
    assert "blocked" in text and "pii_free" in text, shot


def test_mlflow_shows_the_candidate_as_a_logged_model(blocked, browser):
    """The registered candidate is in the experiment's Models tab as an MLflow 3 logged
    model, with the verdict its run got."""
    client = blocked["client"]
    experiment = client.get_experiment_by_name("credit_clean")
    (run,) = client.search_runs([experiment.experiment_id])
    model_id = run.data.tags["risk_assets.logged_model_id"]
    url = f"{blocked['mlflow']}/#/experiments/{experiment.experiment_id}/models/{model_id}"
    page = _page(browser, url, wait_until="load")
    page.get_by_text("credit_clean-candidates").first.wait_for(timeout=60_000)
    page.get_by_text("test.roc_auc").first.wait_for(timeout=60_000)
    text = page.inner_text("body")
    shot = _screenshot(page, "mlflow-logged-model")
    assert "Ready" in text and model_id in text, shot
    assert "Not registered" not in text, shot  # its registered version links back to it
    assert "Registered as credit_clean-candidates/1 (challenger)" in text, shot  # the verdict
    assert "test.roc_auc" in text, shot  # the test metrics, logged with the model
