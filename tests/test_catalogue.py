"""The catalogue of controls: one contract over every entry, and what is decided at load.

After scikit-learn's ``parametrize_with_checks``: one set of checks applied to every entry
of :data:`risk_assets.catalogue.CATALOGUE`, each run the way its gate runs it (the entry's
runner on a gate's inputs, here :class:`FrameInputs`, an implementation of
:class:`risk_assets.catalogue.Inputs` on plain DataFrames), with the params of the example
registers (every control must appear in one):

1. the same inputs and seed give the same result;
2. inputs that are not there fail the gate closed (the runner raises or returns a failed
   result; the Dagster layer's ``run_control`` makes a raise a failed gate);
3. a planted text and number appear nowhere in the evidence;
4. what a control requires of the spec is reported at load with the risk and the key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import (
    CATEGORICAL,
    CREDIT_SERVING,
    CREDIT_SPEC,
    CREDIT_SUITE,
    FEATURES,
    PIPELINES,
    make_pipeline,
)
from risk_assets.catalogue import ASSETS, CATALOGUE, Champion, Check, ColumnKinds, entry
from risk_assets.controls import DecisionCounts
from risk_assets.dagster._checks import run_control
from risk_assets.data import read_source, split_frame
from risk_assets.errors import PolicyError, SpecError
from risk_assets.estimator import build_pipeline
from risk_assets.labels import positive_scores
from risk_assets.pipeline import load_pipeline
from risk_assets.policy import Risk, load_policy, policy_json_schema
from risk_assets.spec import load_spec

TARGET = "risk"
SEED = 0
SECRET_TEXT = "zz_SECRET_9f3"
SECRET_NUMBER = 987654.321
#: Smaller samples than the registers' so the whole contract runs in seconds; the
#: attacks keep their semantics.
FAST = {
    "evasion": {"sample_size": 5, "max_iter": 2, "max_eval": 10, "init_size": 10},
    "membership_inference": {"sample_size": 100},
    "perturbation": {"sample_size": 100, "trials": 3},
    "explainability": {"sample_size": 100, "n_repeats": 2},
    "label_noise": {"sample_size": 400},
}


def _example_params() -> dict[str, dict]:
    """Each control's params from the shipped example registers."""
    out: dict[str, dict] = {}
    for path in sorted((PIPELINES / "policies").glob("*.yaml")):
        for risk in yaml.safe_load(path.read_text())["risks"]:
            control = risk.get("control")
            if control:
                out.setdefault(control["name"], control.get("params") or {})
    return out


EXAMPLES = _example_params()


def _check(name: str, attribute: str | None = "sex") -> Check:
    found = entry(name)
    params = found.params.model_validate({**EXAMPLES[name], **FAST.get(name, {})})
    risk = Risk.model_validate(
        {
            "id": "T-001",
            "title": "contract",
            "category": "operational",
            "control": {"name": name, "params": EXAMPLES[name]},
        }
    )
    check_name = found.check.format(attribute=attribute)
    return Check(check_name, risk, found, params, attribute if found.per_attribute else None)


def _fit(frame: pd.DataFrame) -> Any:
    model = build_pipeline(
        class_path="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 1000},
        numeric=[c for c in FEATURES if c not in CATEGORICAL],
        categorical=CATEGORICAL,
    )
    return model.fit(frame[FEATURES], frame[TARGET])


@dataclass
class Data:
    """Frames and models for every kind of input, made once per module."""

    frame: pd.DataFrame  # the data judged (new rows)
    reference: pd.DataFrame  # the champion's training rows
    train: pd.DataFrame
    test: pd.DataFrame
    model: Any
    champion: Any


def _data(credit: pd.DataFrame, plant: bool = False) -> Data:
    credit = credit.copy()
    if plant:
        rows = credit.index[::97]
        credit["credit_amount"] = credit["credit_amount"].astype("float64")
        credit.loc[rows, "purpose"] = SECRET_TEXT
        credit.loc[rows, "credit_amount"] = SECRET_NUMBER
    shuffled = credit.sample(frac=1.0, random_state=SEED).reset_index(drop=True)
    reference, frame = shuffled.iloc[:500], shuffled.iloc[500:].reset_index(drop=True)
    split = split_frame(frame, target=TARGET, test_size=0.3, seed=SEED, stratify=True)
    return Data(frame, reference, split.train, split.test, _fit(split.train), _fit(reference))


@dataclass
class FrameInputs:
    """:class:`risk_assets.catalogue.Inputs` on DataFrames, as a notebook would build it."""

    data: Data
    spec: Any
    spec_path: str = str(CREDIT_SPEC)
    policy_path: str = "policy.yaml"
    suite_path: Path = CREDIT_SUITE
    extra: dict[str, Any] = field(default_factory=dict)
    suite_sha256: str | None = None
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    categorical: list[str] = field(default_factory=lambda: list(CATEGORICAL))
    target: str = TARGET

    @property
    def frame(self) -> pd.DataFrame:
        return self.data.frame

    @property
    def raw(self) -> pd.DataFrame:
        return self.data.frame

    @property
    def reference(self) -> pd.DataFrame:
        return self.data.reference

    @property
    def train(self) -> pd.DataFrame:
        return self.data.train

    @property
    def test(self) -> pd.DataFrame:
        return self.data.test

    @property
    def model(self) -> Any:
        return self.data.model

    @cached_property
    def labels(self) -> Any:
        return self.spec.labels(self.model.classes_, where=self.spec_path)

    @property
    def favourable(self) -> Any:
        return self.labels.require_favourable(target=self.target, where=self.spec_path)

    @cached_property
    def test_predictions(self) -> Any:
        return self.model.predict(self.test[self.features])

    @cached_property
    def metrics(self) -> dict[str, float]:
        from risk_assets.controls._performance import evaluate_classifier

        test = self.test
        positive = self.labels.positive
        return evaluate_classifier(
            self.model, test[FEATURES], test[TARGET], positive_label=positive
        )

    def serving(self) -> pd.DataFrame:
        return read_source(CREDIT_SERVING, "csv")

    def champion(self) -> Champion:
        return Champion("credit_risk/1", self.data.champion, self.reference, self.test)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        rows = self.frame[FEATURES]
        return pd.DataFrame(
            {
                "prediction": self.model.predict(rows),
                "score": positive_scores(self.model, rows, self.spec),
            }
        )

    @cached_property
    def outcomes(self) -> pd.DataFrame:
        return self.predictions.assign(label=self.frame[TARGET].to_numpy())

    @property
    def decisions(self) -> DecisionCounts:
        pred = self.predictions["prediction"]
        return DecisionCounts("2025-07", len(pred), int((pred == self.favourable).sum()))

    def earlier_decisions(self, history: int) -> list[DecisionCounts]:
        out = []
        for k in range(min(history, 6)):
            rows = self.reference.sample(n=80, random_state=k)
            pred = self.model.predict(rows[FEATURES])
            out.append(DecisionCounts(f"2025-0{k + 1}", 80, int((pred == self.favourable).sum())))
        return out


class MissingInputs(FrameInputs):
    """Inputs whose data, models and records are not there: each raises when read."""

    def __getattribute__(self, name: str) -> Any:
        if name in {
            "frame",
            "raw",
            "reference",
            "train",
            "test",
            "model",
            "metrics",
            "predictions",
            "outcomes",
            "decisions",
            "test_predictions",
            "serving",
            "champion",
            "earlier_decisions",
        }:
            raise LookupError(f"{name} is not available")
        return super().__getattribute__(name)


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_spec(CREDIT_SPEC).spec


@pytest.fixture(scope="module")
def clean(credit) -> Data:
    return _data(credit)


@pytest.fixture(scope="module")
def planted(credit) -> Data:
    return _data(credit, plant=True)


NAMES = sorted(CATALOGUE)


def test_every_control_is_in_an_example_register_and_the_schema():
    assert set(EXAMPLES) == set(CATALOGUE)
    schema = json.dumps(policy_json_schema())
    for name, found in CATALOGUE.items():
        assert f'"const": "{name}"' in schema, name
        for param in found.params.model_fields:
            assert f'"{param}"' in schema, (name, param)


def test_entries_are_consistent():
    checks = [e.check for e in CATALOGUE.values()]
    assert len(set(checks)) == len(checks)
    for name, found in CATALOGUE.items():
        assert found.name == name and found.asset in ASSETS
        assert ("{attribute}" in found.check) == found.per_attribute
        assert found.description


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result(name, clean, spec):
    check = _check(name)
    first = check.run(FrameInputs(clean, spec)).to_dict()
    second = check.run(FrameInputs(clean, spec)).to_dict()
    assert first == second


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_a_control_runs_on_one_blas_thread_and_gives_the_threads_back(clean, spec):
    """Controls work on bounded samples, where a second BLAS thread costs more than it
    computes: a check's control sees GATE_BLAS_THREADS BLAS threads (here the label-noise
    control, whose six fits are BLAS work), and the process has its own back after it,
    whether the control returns or raises. Its verdict is the one it gives on two."""
    import dataclasses

    from threadpoolctl import threadpool_limits

    from risk_assets.catalogue._entry import GATE_BLAS_THREADS

    check = _check("label_noise")
    seen: list[list[int]] = []

    def recording(c: Check, inputs: Any) -> Any:
        seen.append(_blas_threads())
        if inputs is None:
            raise RuntimeError("no inputs")
        return check.entry.run(c, inputs)

    watched = dataclasses.replace(check, entry=dataclasses.replace(check.entry, run=recording))
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and all(n == 2 for n in before)
        result = watched.run(FrameInputs(clean, spec))
        assert _blas_threads() == before
        with pytest.raises(RuntimeError):
            watched.run(None)
        assert _blas_threads() == before
        on_two = check.entry.run(check, FrameInputs(clean, spec))
    assert seen == [[GATE_BLAS_THREADS] * len(before)] * 2
    assert (result.passed, result.summary) == (on_two.passed, on_two.summary)


@pytest.mark.parametrize("name", NAMES)
def test_missing_inputs_fail_closed(name, clean, spec):
    check = _check(name)
    result = run_control(
        lambda: check.run(MissingInputs(clean, spec)), logging.getLogger("test"), check.name
    )
    assert result.passed is False
    assert "could not decide" in result.summary or "raised" in result.summary


@pytest.mark.parametrize("name", NAMES)
def test_no_raw_value_in_evidence(name, planted, spec):
    check = _check(name)
    inputs = FrameInputs(planted, spec)
    result = run_control(lambda: check.run(inputs), logging.getLogger("test"), check.name)
    text = json.dumps(result.to_dict(), default=str) + json.dumps(inputs.extra, default=str)
    assert SECRET_TEXT not in text
    assert "987654" not in text


# -- load time ----------------------------------------------------------------------------


def _policy_index(policy_path: Path, control: str) -> tuple[int, str]:
    doc = yaml.safe_load(policy_path.read_text())
    for i, risk in enumerate(doc["risks"]):
        if (risk.get("control") or {}).get("name") == control:
            return i, risk["id"]
    raise AssertionError(control)


def _load_error(spec_path: Path) -> str:
    with pytest.raises(SpecError) as err:
        load_pipeline(spec_path)
    return str(err.value)


def test_skew_without_serving_source_is_a_load_error(tmp_path):
    spec_path = make_pipeline(tmp_path / "p", spec={"serving_source": None})
    message = _load_error(spec_path)
    i, risk_id = _policy_index(tmp_path / "p" / "policy.yaml", "skew")
    assert str(tmp_path / "p" / "policy.yaml") in message and str(spec_path) in message
    assert f"risk {risk_id} (skew), spec key serving_source" in message


def test_budget_on_a_declared_categorical_feature_is_a_load_error(tmp_path):
    budgets = {"duration": 2.0, "purpose": 1.0}
    spec_path = make_pipeline(
        tmp_path / "p",
        spec={"categorical_features": CATEGORICAL},
        policy={"risk_params": {"ROB-001": {"budgets": budgets, "max_flip_rate": 0.1}}},
    )
    message = _load_error(spec_path)
    i, _ = _policy_index(tmp_path / "p" / "policy.yaml", "perturbation")
    assert f"risks.{i}.control.params.budgets.purpose" in message
    assert "categorical" in message and "categorical_moves" in message


def test_budget_on_the_target_or_a_missing_feature_is_a_load_error(tmp_path):
    budgets = {"duration": 2.0, "risk": 1.0}
    spec_path = make_pipeline(
        tmp_path / "p",
        policy={"risk_params": {"ROB-001": {"budgets": budgets, "max_flip_rate": 0.1}}},
    )
    i, _ = _policy_index(tmp_path / "p" / "policy.yaml", "perturbation")
    assert f"risks.{i}.control.params.budgets.risk: 'risk' is not a model feature" in _load_error(
        spec_path
    )


def test_budget_on_a_column_the_suite_expects_in_a_set_is_a_load_error(tmp_path):
    """The spec does not list 'housing' as categorical, but its expectation suite expects
    it in a set of values: a budget on it is refused when the pipeline loads."""
    budgets = {"duration": 2.0, "housing": 1.0}
    spec_path = make_pipeline(
        tmp_path / "p",
        policy={"risk_params": {"ROB-001": {"budgets": budgets, "max_flip_rate": 0.1}}},
    )
    message = _load_error(spec_path)
    i, _ = _policy_index(tmp_path / "p" / "policy.yaml", "perturbation")
    assert f"risks.{i}.control.params.budgets.housing: 'housing' is categorical" in message
    assert "expectation suite" in message


def test_a_stray_text_value_stays_the_suites_finding(tmp_path, state, capsys):
    """One text cell in a budgeted numeric column is a data fault: the expectation suite
    blocks the run with evidence, nothing refuses it as a policy mistake."""
    from risk_assets.cli import main

    data = pd.read_csv(PIPELINES / "data" / "german_credit.csv")
    data["credit_amount"] = data["credit_amount"].astype(object)
    data.loc[17, "credit_amount"] = "unknown"
    spec_path = make_pipeline(tmp_path / "p", data=data)
    code = main(["run", str(spec_path), "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 3 and "meets_expectations" in payload["blocked_by"]


def test_fairness_without_protected_attributes_is_a_load_error(tmp_path):
    spec_path = make_pipeline(
        tmp_path / "p", spec={"protected_attributes": [], "protected_bands": {}}
    )
    message = _load_error(spec_path)
    assert "(fairness), spec key protected_attributes" in message
    assert "(explainability), spec key protected_attributes" in message


def test_monitoring_controls_need_a_partitioned_source(tmp_path):
    monthly = yaml.safe_load((PIPELINES / "policies" / "credit_risk_monthly.yaml").read_text())
    spec_path = make_pipeline(tmp_path / "p")
    policy_path = tmp_path / "p" / "policy.yaml"
    doc = yaml.safe_load(policy_path.read_text())
    doc["risks"] += [r for r in monthly["risks"] if r["control"]["name"] == "input_drift"]
    policy_path.write_text(yaml.safe_dump(doc))
    assert "(input_drift), spec key source.folder" in _load_error(spec_path)


def test_budget_requirements_name_the_key():
    found = entry("evasion")
    spec = load_spec(CREDIT_SPEC).spec.model_copy(update={"features": None})
    kinds = ColumnKinds(
        columns=("duration", "job", "risk", "credit_amount"),
        categorical=("job",),
        numeric=("duration", "credit_amount"),
    )
    params = found.params.model_validate(
        {
            "budgets": {"duration": 1.0, "job": 1.0, "gone": 1.0, "risk": 1.0},
            "categorical_moves": ["credit_amount"],
            "max_success_rate": 0.2,
        }
    )
    problems = {p.key: p.message for p in found.requires(params, spec, kinds)}
    assert set(problems) == {
        "params.budgets.job",
        "params.budgets.gone",
        "params.budgets.risk",
        "params.categorical_moves.credit_amount",
    }
    assert "categorical" in problems["params.budgets.job"]
    assert "not among the columns" in problems["params.budgets.gone"]
    assert "not a model feature" in problems["params.budgets.risk"]
    assert "numeric" in problems["params.categorical_moves.credit_amount"]


def test_a_slice_column_the_suite_does_not_expect_is_a_load_error(tmp_path):
    spec_path = make_pipeline(tmp_path / "p", spec={"features": None, "slices": ["branch"]})
    message = _load_error(spec_path)
    assert "(slices), spec key slices.branch: slice column 'branch' is not among" in message


def test_a_policy_names_the_control_key_without_the_union_tag(tmp_path):
    path = tmp_path / "policy.yaml"
    doc = yaml.safe_load((PIPELINES / "policies" / "credit_risk.yaml").read_text())
    risk = next(r for r in doc["risks"] if r["control"]["name"] == "drift")
    risk["control"]["params"]["alhpa"] = 0.01
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    i = doc["risks"].index(risk)
    assert f"risks.{i}.control.params.alhpa: unknown key" in str(err.value)


def test_policy_schema_command_prints_every_control(capsys):
    from risk_assets.cli import main

    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    tags = {
        d["properties"]["name"]["const"]
        for d in schema["$defs"].values()
        if "name" in d.get("properties", {}) and "const" in d["properties"]["name"]
    }
    assert tags == set(CATALOGUE)


@pytest.mark.parametrize(
    "expression",
    ["0 6 2 * *", "*/15 * * * *", "0 0 * * mon-fri", "@daily", "0 0 1 jan,jul *", "5 4 * * 7"]
    + ["0 0 L * *", "0 0 * * 5#3", "0 0 ? * *", "0 0 ? * mon#2", "0 0 L 2 *", "0 0 31 2,3 *"]
    + ["0 0 29 2 *", "0 0 30,31 2 *", "0 0 * * 7#1", "5-1 * * * *", "0 0 2-30/3 feb *"]
    + ["61 * * * *", "* * *", "0 0 32 * *", "a b c d e", "*/0 * * * *", "0 0 * * * *"]
    + ["0 0 31 2 *", "0 0 30 feb *", "0 0 31 02 *", "0 0 LW * *", "0 0 15W * *", "@reboot"]
    + ["0 0 * * 5L", "0 0 * * 0#6", "0 0 * * 1#2,5", "H 0 * * *", "0 0 L-2 * *"],
)
def test_spec_cron_check_agrees_with_dagster(expression):
    """The spec checks its schedule without importing Dagster; Dagster decides the same."""
    from dagster._utils.schedules import is_valid_cron_string

    from risk_assets.spec import is_valid_cron

    assert is_valid_cron(expression) == is_valid_cron_string(expression)


def test_unknown_or_missing_control_names_are_named(tmp_path):
    path = tmp_path / "policy.yaml"
    doc = yaml.safe_load((PIPELINES / "policies" / "credit_risk.yaml").read_text())
    doc["risks"][0]["control"]["name"] = "crystal_ball"
    del doc["risks"][1]["control"]["name"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert "risks.0.control: name: unknown control 'crystal_ball'" in str(err.value)
    assert "risks.1.control: name: required key is missing" in str(err.value)


def test_a_policy_pickles():
    import pickle

    policy = load_policy(PIPELINES / "policies" / "credit_risk.yaml").policy
    assert pickle.loads(pickle.dumps(policy)) == policy
