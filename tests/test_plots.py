"""Gate plots: PNGs drawn from real gate results, and logged on the candidate's MLflow run
(model gates directly, data gates from beside the snapshot's evidence)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import CATEGORICAL, FEATURES, make_pipeline, mlflow_client, using_state
from risk_assets.catalogue import CATALOGUE
from risk_assets.cli import main
from risk_assets.controls._drift import feature_drift
from risk_assets.controls._explain import protected_among_top_features
from risk_assets.controls._fairness import fairness_across
from risk_assets.controls._plots import plot_png
from risk_assets.controls._result import ControlResult
from risk_assets.controls._slices import performs_across_slices
from risk_assets.data import split_frame
from risk_assets.estimator import build_pipeline


def _image(png: bytes):
    from matplotlib.image import imread

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return imread(io.BytesIO(png), format="png")


@pytest.fixture(scope="module")
def fitted(credit):
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=["credit_amount", "duration"],
        categorical=CATEGORICAL,
    ).fit(split.train[FEATURES], split.train["risk"])
    return split, model, model.predict(split.test[FEATURES])


def test_each_plotted_control_draws_its_table(credit, fitted):
    split, model, pred = fitted
    test = split.test
    shifted = credit.assign(duration=credit["duration"] + credit["duration"].std())
    results = {
        "drift": feature_drift(
            split.train, shifted, numeric=["credit_amount", "duration"], categorical=CATEGORICAL
        ),
        "fairness": fairness_across(test["risk"], pred, test["sex"], favourable=1, min_ratio=0.8),
        "slices": performs_across_slices(
            test["risk"],
            pred,
            {"housing": test["housing"]},
            metric="accuracy",
            min_value=0.5,
            max_gap=None,
            min_slice_size=20,
        ),
        "explainability": protected_among_top_features(
            model,
            test[FEATURES],
            test["risk"],
            test[["sex"]],
            top_k=3,
            proxy_threshold=0.5,
            categorical=CATEGORICAL,
        ),
    }
    assert set(results) == {name for name, e in CATALOGUE.items() if e.plot is not None}
    for control, result in results.items():
        image = _image(plot_png(CATALOGUE[control].plot, f"{control}_check", result))
        assert image.shape[0] >= 250 and image.shape[1] == 750, control  # 7.5 in at 100 dpi
    # taller tables make taller plots: one bar per row
    small = _image(plot_png(CATALOGUE["drift"].plot, "d", results["drift"]))
    bigger = ControlResult(
        passed=True, value=0.0, threshold=0.0, summary="", table=results["drift"].table * 4
    )
    assert _image(plot_png(CATALOGUE["drift"].plot, "d", bigger)).shape[0] > small.shape[0]


def test_no_plot_without_a_picture_or_a_table():
    empty = ControlResult(passed=True, value=None, threshold=0.0, summary="no reference")
    assert plot_png(CATALOGUE["drift"].plot, "no_feature_drift", empty) is None
    table = ControlResult(passed=True, value=0.0, threshold=0.0, summary="", table=[{"a": 1}])
    assert plot_png(CATALOGUE["stress"].plot, "valid_under_stress", table) is None


def test_plots_are_on_the_candidate_run(clean_run, tmp_path, capsys):
    """A second run against the champion: the drift gate now has a reference and a table,
    its plot travels from the snapshot's evidence to the candidate's run."""
    spec = make_pipeline(
        tmp_path / "again",
        spec={"estimator": {"class": "sklearn.dummy.DummyClassifier", "params": {}}},
    )
    with using_state(clean_run["state"]):
        main(["run", str(spec), "--json"])  # blocked by its model gates; the run remains
        client = mlflow_client()
        runs = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            order_by=["attributes.start_time DESC"],
        )
        run_id = runs[0].info.run_id
        listed = {a.path for a in client.list_artifacts(run_id, "gates")}
        assert listed == {
            "gates/no_feature_drift.png",
            "gates/performs_across_slices.png",
            "gates/no_protected_proxy_in_top_features.png",
            "gates/fair_across_sex.png",
            "gates/fair_across_age.png",
        }
        local = client.download_artifacts(run_id, "gates/no_feature_drift.png", str(tmp_path))
        _image(Path(local).read_bytes())
    capsys.readouterr()
