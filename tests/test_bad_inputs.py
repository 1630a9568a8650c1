"""Bad inputs, one table: every case is refused with exit 2, a message naming the culprit
(the file, the key, the column or the option), no Python traceback, nothing registered in
MLflow and nothing half-written in the state folder.

The cases run the command line in this process (``risk_assets.cli.main``) with the state
folder, the environment, the root logger's handlers and the warning filters isolated per
case; two tests at the end run the installed ``risk-assets`` executable for the same
contract as a user gets it (exit code, one line, no traceback). A case that reaches a
Dagster run starts from a copy of empty, migrated stores (``empty_stores``), one from no
state folder at all.

What "nothing half-written" means, read from what a refused run leaves behind:

- a case refused while the spec, policy, suite, data head or command line is read (before
  any run starts) leaves no state folder at all: no Dagster instance, no MLflow store, no
  log file;
- a case refused inside the Dagster run (the data step, or training) leaves a failed
  Dagster run, content-addressed snapshots that are complete (their content hashes to
  their name), no temporary file, no value of ``candidate_model`` or ``registered_model``,
  no MLflow run (so none left ``RUNNING``), no model version, and no audit record of a
  registration or promotion.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import (
    CREDIT_SUITE,
    FEATURES,
    make_pipeline,
    registered_versions,
    run_cli,
)
from risk_assets._yaml import MAX_ALIAS_NODES, MAX_YAML_BYTES

EXIT_CONFIG = 2

#: Environment that moves a store or changes what the CLI prints: cleared for every case.
_ENV = (
    "RISK_ASSETS_HOME",
    "DAGSTER_HOME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "RISK_ASSETS_AUDIT_LOG",
    "RISK_ASSETS_OBJECT_STORE",
    "RISK_ASSETS_DEBUG",
)
#: Loggers whose level the CLI sets (``_quiet_libraries``): put back after each case.
_LIBRARY_LOGGERS = ("mlflow", "alembic", "great_expectations")

# ---------------------------------------------------------------------------------------
# Running the CLI in this process
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _isolated(state: Path) -> Iterator[None]:
    """This process pointed at ``state`` alone, and put back as it was afterwards: the
    environment (the CLI sets ``DAGSTER_HOME`` and MLflow's variables in ``os.environ``),
    the root logger's handlers and level, the library loggers' levels and the warning
    filters. A handler the CLI leaves on the root logger fails the case."""
    saved_env = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}
    for key in _ENV:
        os.environ.pop(key, None)
    os.environ["RISK_ASSETS_HOME"] = str(state)
    try:
        with warnings.catch_warnings():
            yield
        assert root.handlers == handlers, f"the CLI left handlers: {root.handlers}"
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for extra in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(extra)
        root.setLevel(level)
        for name, lvl in levels.items():
            logging.getLogger(name).setLevel(lvl)
        logging.captureWarnings(False)


def run_in_process(argv: list[str], *, state: Path) -> tuple[int, str, str]:
    """``risk-assets ARGV`` in this process on the state folder ``state`` (which need not
    exist). Returns the exit code, stdout and stderr. argparse's own refusal of a command
    line (a ``SystemExit``) is returned as its exit code."""
    from risk_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _isolated(state), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def empty_stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder whose MLflow database and Dagster instance exist, migrated and empty,
    made by the code a run uses. A case that reaches a run starts from a copy of it:
    migrating both databases costs seconds a case."""
    state = tmp_path_factory.mktemp("empty_stores") / "state"
    with _isolated(state):
        from risk_assets.dagster._resources import MlflowResource
        from risk_assets.dagster._runner import _instance

        _instance().dispose()
        MlflowResource().get_client().search_experiments()
    return state


# ---------------------------------------------------------------------------------------
# What a refused run may leave behind
# ---------------------------------------------------------------------------------------


def _registry(state: Path) -> tuple[list, list[tuple[str, str]]]:
    """The model versions and the (run name, status) of every MLflow run in the state's
    MLflow store; both empty when no store was made."""
    db = state / "mlflow" / "mlflow.db"
    if not db.is_file():
        return [], []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    runs = [
        (run.info.run_name, run.info.status)
        for exp in client.search_experiments()
        for run in client.search_runs([exp.experiment_id])
    ]
    return registered_versions(client), runs


def assert_nothing_kept(state: Path, *, early: bool) -> None:
    """Nothing registered, nothing half-written (see the module's docstring)."""
    if early:
        kept = sorted(str(p.relative_to(state)) for p in state.rglob("*"))
        assert not state.exists(), f"refused before any run, yet the state holds {kept}"
        return
    files = [p for p in state.rglob("*") if p.is_file()]
    # a store's creation lock (an empty file kept for the next opening) is not a write
    temporary = [
        p
        for p in files
        if p.name.endswith(".tmp") or (p.name.startswith(".") and p.name != ".store.lock")
    ]
    assert not temporary, f"temporary files left: {temporary}"

    from risk_assets.data import frame_sha256

    for path in (state / "snapshots" / "frames").rglob("*.parquet"):
        assert frame_sha256(pd.read_parquet(path)) == path.stem, f"incomplete snapshot {path}"
    for path in (state / "io").rglob("*"):
        assert "candidate_model" not in path.parts and "registered_model" not in path.parts, path
        if path.is_file():
            json.loads(path.read_text(encoding="utf-8"))  # complete JSON

    versions, runs = _registry(state)
    assert versions == [], versions
    assert runs == [], f"MLflow runs left by a refused run: {runs}"

    audit = state / "audit" / "audit.jsonl"
    if audit.exists():
        actions = [json.loads(line)["action"] for line in audit.read_text().splitlines()]
        assert not {"registration", "promotion"} & set(actions), actions

    runs_db = state / "dagster" / "history" / "runs.db"
    assert runs_db.is_file(), "a case refused inside a run made no Dagster run"
    with contextlib.closing(sqlite3.connect(runs_db)) as conn:
        statuses = [row[0] for row in conn.execute("SELECT status FROM runs")]
    assert statuses and set(statuses) == {"FAILURE"}, statuses


# ---------------------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------------------

Setup = Callable[[Path, pd.DataFrame], object]


@dataclass(frozen=True)
class Bad:
    """One bad input: how to make it in a pipeline folder, the command line, and what the
    message must name (``{spec}``, ``{policy}``, ``{suite}``, ``{data}`` and ``{folder}``
    stand for the paths in the folder)."""

    setup: Setup
    culprits: tuple[str, ...]
    argv: tuple[str, ...] = ("run", "{spec}")
    #: refused before any run starts: the state folder is never made
    early: bool = True
    #: text that must not appear in the output (personal data, a file's content)
    absent: tuple[str, ...] = ()
    #: refused by argparse: a usage line and argparse's own error line on stderr
    usage: bool = False
    skip: str | None = None
    #: a known bug, kept in the table so that it is seen when fixed
    xfail: str | None = None
    #: reaches a run from no state folder at all, as a first run does (the other cases
    #: that reach a run start from a copy of ``empty_stores``)
    fresh: bool = False


def _yaml_edit(path: Path, edit: Callable[[dict], object]) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _risk(doc: dict, risk_id: str) -> dict:
    return next(r for r in doc["risks"] if r["id"] == risk_id)


def spec_edit(edit: Callable[[dict], object], **make: object) -> Setup:
    """The pipeline with its spec document edited."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        _yaml_edit(make_pipeline(folder, **make), edit)

    return setup


def policy_edit(edit: Callable[[dict], object], **make: object) -> Setup:
    """The pipeline with its policy document edited."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder, **make)
        _yaml_edit(folder / "policy.yaml", edit)

    return setup


def text_edit(name: str, edit: Callable[[str], str], **make: object) -> Setup:
    """The pipeline with one of its files rewritten as text (``edit`` of its text)."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder, **make)
        path = folder / name
        path.write_text(edit(path.read_text()))

    return setup


def file_bytes(
    name: str, content: bytes | Callable[[pd.DataFrame], bytes], **make: object
) -> Setup:
    """The pipeline with one of its files replaced by ``content``."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder, **make)
        data = content(credit) if callable(content) else content
        (folder / name).write_bytes(data)

    return setup


def data_edit(edit: Callable[[pd.DataFrame], pd.DataFrame], **make: object) -> Setup:
    """The pipeline on the credit data as ``edit`` changes it."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder, data=edit(credit.copy()), **make)

    return setup


def _traversal(key: str) -> Setup:
    """The pipeline one folder down, its ``key`` climbing out of it to a file that is no
    policy or suite."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        spec = make_pipeline(folder / "deep")
        (folder / "secret.txt").write_text("password=hunter2\n")
        _yaml_edit(spec, lambda d: d.update({key: "../secret.txt"}))

    return setup


def _without(name: str) -> Setup:
    """The pipeline with one of its files removed."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder)
        (folder / name).unlink()

    return setup


def _append(text: str) -> Callable[[str], str]:
    return lambda doc: doc + text


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = [f"lol0: &lol0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


# 1. YAML that must not be expanded, parsed past a bound, or executed -- in a spec and in a
#    policy. Refused while read, naming the file.
_HOSTILE_YAML: dict[str, tuple[Callable[[str], str], tuple[str, ...]]] = {
    # a billion laughs appended to a valid file: refused while composing, before any value
    # is built or validated
    "billion_laughs": (_append(billion_laughs()), ("MAX_ALIAS_NODES", str(MAX_ALIAS_NODES))),
    "billion_laughs_in_a_value": (
        lambda doc: doc.replace("\n", "\n" + billion_laughs().replace("lol", "x"), 1),
        ("MAX_ALIAS_NODES",),
    ),
    "recursive_alias": (_append("loop: &loop [*loop]\n"), ("*loop", "contains it")),
    "larger_than_1_mib": (
        _append("# " + "x" * MAX_YAML_BYTES + "\n"),
        ("larger than", str(MAX_YAML_BYTES), "MAX_YAML_BYTES"),
    ),
    "nested_too_deeply": (
        _append("deep: " + "[" * 20000 + "]" * 20000 + "\n"),
        ("nested too deeply",),
    ),
    "python_object_tag": (
        _append("evil: !!python/object/apply:os.system ['touch pwned']\n"),
        ("not valid YAML", "python/object/apply"),
    ),
    "not_yaml": (_append("name: [unclosed\n"), ("not valid YAML",)),
    "a_list_at_the_top": (lambda doc: "- a\n- b\n", ("expected a mapping", "found list")),
    "empty_file": (lambda doc: "", ("expected a mapping", "found NoneType")),
}
YAML_CASES = {
    f"{which}_{name}": Bad(text_edit(file, edit), (f"{{{which}}}", *culprits))
    for which, file in (("spec", "credit_risk.yaml"), ("policy", "policy.yaml"))
    for name, (edit, culprits) in _HOSTILE_YAML.items()
}
YAML_CASES |= {
    "spec_not_utf8": Bad(
        file_bytes("credit_risk.yaml", b"name: cr\xe9dit\n"), ("{spec}", "cannot read spec file")
    ),
    "policy_not_utf8": Bad(
        file_bytes("policy.yaml", b"\xff\xfename: x\n"), ("{policy}", "cannot read policy file")
    ),
    "spec_missing": Bad(
        lambda folder, credit: folder.mkdir(parents=True),
        ("spec file not found", "{folder}/nowhere.yaml"),
        argv=("run", "{folder}/nowhere.yaml"),
    ),
    "spec_is_a_folder": Bad(
        lambda folder, credit: (folder / "a_folder.yaml").mkdir(parents=True),
        ("spec file not found", "{folder}/a_folder.yaml"),
        argv=("run", "{folder}/a_folder.yaml"),
    ),
}


# 2. Spec keys: missing, unknown, of the wrong type or value, contradicting each other, or
#    naming files that are not there (or are not files).
SPEC_CASES = {
    "spec_target_missing": Bad(
        spec_edit(lambda d: d.pop("target")), ("{spec}", "target: required key is missing")
    ),
    "spec_unknown_key": Bad(
        spec_edit(lambda d: d.update(estimatr={})), ("{spec}", "estimatr: unknown key")
    ),
    "spec_name_upper_case": Bad(
        spec_edit(lambda d: d.update(name="Credit Risk")),
        ("{spec}", "name: Value error, expected lower case"),
    ),
    "spec_target_not_a_string": Bad(
        spec_edit(lambda d: d.update(target=5)),
        ("{spec}", "target: Input should be a valid string"),
    ),
    "spec_features_not_a_list": Bad(
        spec_edit(lambda d: d.update(features="age")),
        ("{spec}", "features: Input should be a valid list"),
    ),
    "spec_features_empty": Bad(
        spec_edit(lambda d: d.update(features=[], slices=[])), ("{spec}", "features is empty")
    ),
    "spec_features_repeated": Bad(
        spec_edit(lambda d: d.update(features=[*FEATURES, "duration"])),
        ("{spec}", "features lists ['duration'] more than once"),
    ),
    "spec_features_hold_the_target": Bad(
        spec_edit(lambda d: d.update(features=["risk", "age"])),
        ("{spec}", "must not contain the target column"),
    ),
    "spec_categorical_not_a_feature": Bad(
        spec_edit(lambda d: d.update(categorical_features=["sex"])),
        ("{spec}", "categorical_features names columns that are not features: ['sex']"),
    ),
    "spec_slice_unknown": Bad(
        spec_edit(lambda d: d.update(slices=["housing", "colour"])),
        ("{spec}", "slices names ['colour']"),
    ),
    "spec_test_size_above_1": Bad(
        spec_edit(lambda d: d.update(split={"test_size": 1.5})), ("{spec}", "split.test_size")
    ),
    "spec_test_size_zero": Bad(
        spec_edit(lambda d: d.update(split={"test_size": 0})), ("{spec}", "split.test_size")
    ),
    "spec_test_size_nan": Bad(
        spec_edit(lambda d: d.update(split={"test_size": float("nan")})),
        ("{spec}", "split.test_size"),
    ),
    "spec_seed_negative": Bad(
        spec_edit(lambda d: d.update(split={"seed": -1})), ("{spec}", "split.seed")
    ),
    "spec_training_window_zero": Bad(
        spec_edit(lambda d: d.update(training_window=0)), ("{spec}", "training_window")
    ),
    "spec_training_window_unpartitioned": Bad(
        spec_edit(lambda d: d.update(training_window=3)),
        ("{spec}", "training_window needs a partitioned source"),
    ),
    "spec_schedule_not_cron": Bad(
        spec_edit(lambda d: d.update(schedule="0 6 30 2 *")),
        ("{spec}", "schedule", "not a valid cron expression"),
    ),
    "spec_bands_not_increasing": Bad(
        spec_edit(lambda d: d.update(protected_bands={"age": [40, 25]})),
        ("{spec}", "protected_bands.age: expected increasing band edges"),
    ),
    "spec_bands_of_an_unprotected_column": Bad(
        spec_edit(lambda d: d.update(protected_bands={"duration": [12]})),
        ("{spec}", "protected_bands names ['duration']"),
    ),
    "spec_registered_model_name": Bad(
        spec_edit(lambda d: d.update(registered_model="credit risk/../x")),
        ("{spec}", "registered_model"),
    ),
    "spec_id_column_is_the_target": Bad(
        spec_edit(lambda d: d["source"].update(id_column="risk")),
        ("{spec}", "source.id_column must not be the target column"),
    ),
    "spec_source_path_and_folder": Bad(
        spec_edit(lambda d: d["source"].update(folder="data")),
        ("{spec}", "give either path (one file) or folder"),
    ),
    "spec_source_format_unknown": Bad(
        spec_edit(lambda d: d.update(source={"path": "data.xlsx"})),
        ("{spec}", "source: Value error, cannot infer the format"),
    ),
    "spec_estimator_not_dotted": Bad(
        spec_edit(lambda d: d.update(estimator={"class": "LogisticRegression"})),
        ("{spec}", "estimator.class", "dotted class path"),
    ),
    "spec_estimator_class_unknown": Bad(
        spec_edit(lambda d: d.update(estimator={"class": "sklearn.linear_model.Nope"})),
        ("{spec}", "estimator.class", "'Nope'"),
    ),
    "spec_estimator_module_unknown": Bad(
        spec_edit(lambda d: d.update(estimator={"class": "sklearn_nowhere.Forest"})),
        ("{spec}", "estimator.class", "cannot import module 'sklearn_nowhere'"),
    ),
    "spec_estimator_not_an_estimator": Bad(
        spec_edit(lambda d: d.update(estimator={"class": "collections.OrderedDict"})),
        ("{spec}", "estimator.class", "not a scikit-learn style estimator"),
    ),
    # file references: missing, a device that would never end, a file outside the
    # pipeline's folder that is no policy or suite (named, its content never shown)
    "spec_policy_missing": Bad(
        spec_edit(lambda d: d.update(policy="missing.yaml")), ("{spec}", "policy: file not found")
    ),
    "spec_suite_missing": Bad(
        spec_edit(lambda d: d.update(expectations="missing.json")),
        ("{spec}", "expectations: file not found"),
    ),
    "spec_data_missing": Bad(
        _without("data.csv"),
        ("{spec}", "source.path: file not found", "{data}"),
    ),
    "spec_serving_missing": Bad(
        _without("serving.csv"),
        ("{spec}", "serving_source.path: file not found"),
    ),
    "spec_policy_is_a_device": Bad(
        spec_edit(lambda d: d.update(policy="/dev/zero")),
        ("{spec}", "policy: file not found: /dev/zero"),
    ),
    "spec_data_is_a_device": Bad(
        spec_edit(lambda d: d.update(source={"path": "/dev/urandom", "format": "csv"})),
        ("{spec}", "source.path: file not found: /dev/urandom"),
    ),
    "spec_policy_traverses_to_a_secret": Bad(
        _traversal("policy"),
        ("{folder}/secret.txt", "expected a mapping", "found str"),
        argv=("run", "{folder}/deep/credit_risk.yaml"),
        absent=("hunter2",),
    ),
    "spec_suite_traverses_to_a_secret": Bad(
        _traversal("expectations"),
        ("{folder}/secret.txt", "cannot read the expectation suite"),
        argv=("run", "{folder}/deep/credit_risk.yaml"),
        absent=("hunter2",),
    ),
}


# 3. Policy: unknown controls and parameters, thresholds out of range, contradictions, and
#    controls that need what the spec does not give.
def _threshold(value: object) -> Callable[[dict], None]:
    return lambda d: _risk(d, "PERF-001")["control"].update(
        params={"thresholds": {"roc_auc": value}}
    )


POLICY_CASES = {
    "policy_unknown_control": Bad(
        policy_edit(lambda d: d["risks"][0]["control"].update(name="crystal_ball")),
        ("{policy}", "unknown control 'crystal_ball'"),
    ),
    "policy_control_without_name": Bad(
        policy_edit(lambda d: d["risks"][0]["control"].pop("name")),
        ("{policy}", "name: required key is missing"),
    ),
    "policy_unknown_top_level_key": Bad(
        policy_edit(lambda d: d.update(bogus_key=1)), ("{policy}", "bogus_key: unknown key")
    ),
    "policy_unknown_param": Bad(
        policy_edit(lambda d: _risk(d, "DRIFT-001")["control"]["params"].update(bogus=1)),
        ("{policy}", "params.bogus: unknown key"),
    ),
    "policy_thresholds_missing": Bad(
        policy_edit(lambda d: _risk(d, "PERF-001")["control"].update(params={})),
        ("{policy}", "params.thresholds: required key is missing"),
    ),
    "policy_threshold_above_1": Bad(policy_edit(_threshold(7)), ("{policy}", "must lie in [0, 1]")),
    "policy_threshold_negative": Bad(policy_edit(_threshold(-0.1)), ("{policy}", "roc_auc")),
    "policy_threshold_nan": Bad(policy_edit(_threshold(float("nan"))), ("{policy}", "roc_auc")),
    "policy_threshold_infinite": Bad(
        policy_edit(_threshold(float("inf"))), ("{policy}", "roc_auc")
    ),
    "policy_threshold_a_word": Bad(policy_edit(_threshold("high")), ("{policy}", "roc_auc")),
    "policy_unknown_metric": Bad(
        policy_edit(
            lambda d: _risk(d, "PERF-001")["control"].update(params={"thresholds": {"vibes": 0.5}})
        ),
        ("{policy}", "params.thresholds.vibes"),
    ),
    "policy_unknown_severity": Bad(
        policy_edit(lambda d: d["risks"][0]["control"].update(severity="fatal")),
        ("{policy}", "risks.0.control.severity"),
    ),
    "policy_auto_promote_on_tier_high": Bad(
        policy_edit(lambda d: d.update(tier="high")),
        ("{policy}", "auto_promote is only allowed for tier 'low'"),
    ),
    "policy_risk_ids_repeated": Bad(
        policy_edit(lambda d: d["risks"][2].update(id="DQ-001")),
        ("{policy}", "risk ids must be unique"),
    ),
    "policy_risk_id_malformed": Bad(
        policy_edit(lambda d: d["risks"][1].update(id="risk one!")), ("{policy}", "risks.1.id")
    ),
    "policy_risk_category_unknown": Bad(
        policy_edit(lambda d: d["risks"][1].update(category="vibes")),
        ("{policy}", "risks.1.category"),
    ),
    "policy_risk_clause_unknown": Bad(
        policy_edit(lambda d: d["risks"][1].update(clauses=["EU-AI-ACT:Art.999"])),
        ("{policy}", "risks.1.clauses", "EU-AI-ACT:Art.999"),
    ),
    "policy_accepted_without_justification": Bad(
        policy_edit(lambda d: d["risks"][1].update(treatment="accept")),
        ("{policy}", "an accepted risk needs 'justification' and 'accepted_by'"),
    ),
    "policy_mitigated_without_control": Bad(
        policy_edit(lambda d: d["risks"][1].pop("control")),
        ("{policy}", "a mitigated risk needs a control"),
    ),
    "policy_control_treats_two_risks": Bad(
        policy_edit(lambda d: d["risks"][2].update(control=d["risks"][1]["control"])),
        ("{policy}", "treats both"),
    ),
    "policy_likelihood_out_of_range": Bad(
        policy_edit(lambda d: d["risks"][1].update(likelihood=9)),
        ("{policy}", "risks.1.likelihood"),
    ),
    "policy_no_risks": Bad(policy_edit(lambda d: d.update(risks=[])), ("{policy}", "risks")),
    "policy_approvals_three": Bad(
        policy_edit(lambda d: d.update(promotion={"approvals": 3})),
        ("{policy}", "promotion.approvals"),
    ),
    "policy_approver_twice": Bad(
        policy_edit(
            lambda d: d.update(
                promotion={
                    "approvers": [{"user": "ann", "role": "risk"}, {"user": "ann", "role": "ops"}]
                }
            )
        ),
        ("{policy}", "promotion.approvers lists a user twice"),
    ),
    "policy_multivariate_without_alibi": Bad(
        policy_edit(lambda d: _risk(d, "DRIFT-001")["control"]["params"].update(multivariate=True)),
        ("{policy}", "multivariate: true needs backend: alibi"),
    ),
    "policy_alibi_not_installed": Bad(
        policy_edit(lambda d: _risk(d, "DRIFT-001")["control"]["params"].update(backend="alibi")),
        ("pip install 'risk-assets[alibi]'",),
        skip="alibi-detect is installed here" if find_spec("alibi_detect") else None,
    ),
    "policy_without_the_suite_control": Bad(
        policy_edit(lambda d: d["risks"].pop(0)),
        ("{policy}", "no risk uses the 'expectations' control"),
    ),
    "policy_skew_without_serving_source": Bad(
        spec_edit(lambda d: d.pop("serving_source")),
        ("{policy}", "{spec}", "SKEW-001", "serving_source"),
    ),
    "policy_fairness_without_protected_attributes": Bad(
        spec_edit(
            lambda d: d.update(protected_attributes=[], protected_bands={}, slices=["housing"])
        ),
        ("{policy}", "{spec}", "FAIR-001"),
    ),
}


# 4. Expectation suites that are unreadable, empty or malformed.
SUITE_CASES = {
    "suite_empty": Bad(
        file_bytes("suite.json", b'{"name": "s", "expectations": []}'),
        ("{suite}", "'expectations' is missing or empty"),
    ),
    "suite_not_json": Bad(
        file_bytes("suite.json", b"{not json"), ("{suite}", "cannot read the expectation suite")
    ),
    "suite_not_utf8": Bad(
        file_bytes("suite.json", b'{"name": "s\xe9"}'),
        ("{suite}", "cannot read the expectation suite"),
    ),
    "suite_a_list": Bad(file_bytes("suite.json", b"[1, 2]"), ("{suite}", "expected a JSON object")),
    "suite_expectation_without_type": Bad(
        file_bytes("suite.json", b'{"name": "s", "expectations": [{"kwargs": {}}]}'),
        ("{suite}", "expectations[0]: expected an object"),
    ),
    "suite_kwargs_not_an_object": Bad(
        file_bytes("suite.json", b'{"name": "s", "expectations": [{"type": "x", "kwargs": [1]}]}'),
        ("{suite}", "expectations[0].kwargs"),
    ),
    "suite_nested_too_deeply": Bad(
        file_bytes(
            "suite.json", b'{"name": "s", "expectations": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ),
        ("{suite}", "nested too deeply"),
    ),
}


# 5. Data files: unreadable, empty, malformed; columns missing or repeated; targets that
#    are not binary; features of mixed types; values no model should train on; personal
#    data used as a group.
def _repeat_header(column: str, times: int = 2) -> Callable[[pd.DataFrame], bytes]:
    """The credit data as CSV, with ``column`` in the header ``times`` times (values
    copied)."""

    def content(credit: pd.DataFrame) -> bytes:
        frame = credit.copy()
        for i in range(1, times):
            frame[f"{column}__copy{i}"] = frame[column]
        header, rest = frame.to_csv(index=False).split("\n", 1)
        header = ",".join(
            column if name.startswith(f"{column}__copy") else name for name in header.split(",")
        )
        return (header + "\n" + rest).encode()

    return content


def _longer_rows(credit: pd.DataFrame, *, rows: object, extra: str) -> bytes:
    """The credit data as CSV with ``extra`` fields at the end of the data ``rows``."""
    header, *lines = credit.to_csv(index=False).splitlines()
    for i in rows:
        lines[i] += extra
    return "\n".join([header, *lines, ""]).encode()


def _second_column_named_sex(credit: pd.DataFrame) -> bytes:
    """Two different columns under one name: pandas would keep both, one as 'sex.1'."""
    frame = credit.copy()
    frame.insert(1, "sex_again", frame["housing"])
    return frame.to_csv(index=False).replace("sex_again", "sex", 1).encode()


def _mixed(column: str, values: list) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        for i, value in enumerate(values):
            frame.loc[range(i * 7, len(frame), 7 * len(values)), column] = value
        return frame

    return edit


def _target(values: Callable[[pd.DataFrame], list]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["risk"] = values(frame)
        return frame

    return edit


def _parquet(edit: Callable[[pd.DataFrame], object]) -> Setup:
    """The pipeline on a Parquet file of the credit data, written by ``edit(frame, path)``."""

    def setup(folder: Path, credit: pd.DataFrame) -> None:
        make_pipeline(folder, spec={"source": {"path": "data.parquet"}})
        edit(credit.copy(), folder / "data.parquet")

    return setup


def _parquet_mixed_text(frame: pd.DataFrame, path: Path) -> None:
    frame = _mixed("duration", ["abc", "False"])(frame)
    frame["duration"] = frame["duration"].astype(str)
    frame.to_parquet(path, index=False)


def _parquet_truncated(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _parquet_repeated_names(frame: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.append_column("age", table.column("duration")), path)


NAMES = ["Maria Schmidt", "John Smith", "Anna Lee", "Peter Brown", "Linda Jones"]


def _with_names(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(applicant=[NAMES[i % len(NAMES)] for i in range(len(frame))])


def _without_range(column: str) -> dict:
    """The shipped suite without its range on ``column``: nothing there stops infinities."""
    suite = json.loads(CREDIT_SUITE.read_text())
    suite["expectations"] = [
        e
        for e in suite["expectations"]
        if not (
            e["type"] == "expect_column_values_to_be_between"
            and e["kwargs"].get("column") == column
        )
    ]
    return suite


#: Every risk but the expectation suite and the metric thresholds: the cases refused when
#: the model is fitted reach training without the other data gates' cost.
_ONLY_SUITE_AND_METRICS = (
    "PRIV-001", "DRIFT-001", "INT-001", "INT-002", "SKEW-001", "PERF-002", "PERF-003",
    "ROB-001", "ROB-002", "ROB-003", "PRIV-002", "EXPL-001", "FAIR-001",
)  # fmt: skip


def _extreme(value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["credit_amount"] = frame["credit_amount"].astype(float)
        frame.loc[[3, 500, 900], "credit_amount"] = value
        return frame

    return edit


def _identifier(folder: Path, credit: pd.DataFrame) -> None:
    frame = credit.copy()
    frame.insert(0, "applicant_ref", [f"APP-{i:07d}" for i in range(len(frame))])
    suite = json.loads(CREDIT_SUITE.read_text())
    suite["expectations"][0]["kwargs"]["column_set"].append("applicant_ref")
    make_pipeline(
        folder,
        data=frame,
        suite=suite,
        spec={"features": [*FEATURES, "applicant_ref"]},
        without=_ONLY_SUITE_AND_METRICS,
    )


DATA_CASES = {
    "data_empty_file": Bad(file_bytes("data.csv", b""), ("{data}", "cannot read as csv")),
    "data_header_only": Bad(
        file_bytes("data.csv", lambda c: (",".join(c.columns) + "\n").encode()),
        ("{data}", "no rows"),
    ),
    "data_blank_lines_only": Bad(
        file_bytes("data.csv", b"\n\n\n"), ("{data}", "cannot read as csv")
    ),
    # rows longer than the header: pandas would take the first row's extra fields as an
    # index and shift every column onto its neighbour's values
    "data_first_row_longer_than_the_header": Bad(
        file_bytes("data.csv", lambda c: _longer_rows(c, rows=[0], extra=",7,8")),
        ("{data}", "line 2 has 12 fields, the header 10 column names"),
    ),
    "data_trailing_delimiter": Bad(
        file_bytes("data.csv", lambda c: _longer_rows(c, rows=range(len(c)), extra=",")),
        ("{data}", "line 2 has 11 fields, the header 10 column names"),
    ),
    "data_a_later_row_longer_than_the_header": Bad(
        file_bytes("data.csv", lambda c: _longer_rows(c, rows=[4], extra=",7,8")),
        ("{data}", "cannot read as csv", "Expected 10 fields in line 6, saw 12"),
    ),
    "data_wrong_delimiter": Bad(
        file_bytes("data.csv", lambda c: c.to_csv(index=False, sep=";").encode()),
        ("{data}", "target column ['risk'] not found"),
    ),
    "data_not_utf8": Bad(
        file_bytes(
            "data.csv", lambda c: c.to_csv(index=False).replace("male", "mâle").encode("latin-1")
        ),
        ("{data}", "cannot read as csv"),
    ),
    "data_binary_garbage": Bad(
        file_bytes("data.csv", b"\xff\xfe\x00\x81garbage,\x9c\n\x80,2\n"), ("{data}", "cannot read")
    ),
    "data_parquet_not_parquet": Bad(
        _parquet(lambda frame, path: path.write_bytes(b"not a parquet file")),
        ("{folder}/data.parquet", "cannot read as parquet"),
    ),
    "data_parquet_truncated": Bad(
        _parquet(_parquet_truncated), ("{folder}/data.parquet", "cannot read as parquet")
    ),
    "data_parquet_no_rows": Bad(
        _parquet(lambda frame, path: frame.head(0).to_parquet(path, index=False)),
        ("{folder}/data.parquet", "no rows"),
    ),
    "data_parquet_repeated_names": Bad(
        _parquet(_parquet_repeated_names), ("{folder}/data.parquet", "'age'")
    ),
    "data_csv_declared_parquet": Bad(
        spec_edit(lambda d: d["source"].update(format="parquet")),
        ("{data}", "cannot read as parquet"),
    ),
    "data_target_missing": Bad(
        data_edit(lambda f: f.drop(columns=["risk"])),
        ("{data}", "target column ['risk'] not found"),
    ),
    "data_protected_attribute_missing": Bad(
        data_edit(lambda f: f.drop(columns=["sex"])),
        ("{data}", "protected attribute column(s) ['sex'] not found"),
    ),
    # a repeated column name, as written in the header (pandas would read 'age.1')
    "data_repeated_protected_attribute": Bad(
        file_bytes("data.csv", _repeat_header("age")),
        ("{data}", "'age' at positions 10, 11", "repeated column"),
    ),
    "data_repeated_feature_three_times": Bad(
        file_bytes("data.csv", _repeat_header("duration", 3)),
        ("{data}", "'duration' at positions 8, 11, 12", "repeated column"),
    ),
    "data_repeated_target": Bad(
        file_bytes("data.csv", _repeat_header("risk")),
        ("{data}", "'risk' at positions 1, 11", "repeated column"),
    ),
    "data_second_column_under_a_name": Bad(
        file_bytes("data.csv", _second_column_named_sex), ("{data}", "'sex' at positions 2, 3")
    ),
    # targets that are no binary classification
    "data_target_with_missing_values": Bad(
        data_edit(
            _target(lambda f: [None if i % 100 == 0 else v for i, v in enumerate(f["risk"])])
        ),
        ("{data}", "target column 'risk' has 10 missing value(s)"),
        early=False,
    ),
    "data_target_constant": Bad(
        data_edit(_target(lambda f: [1] * len(f))),
        ("{data}", "target column 'risk' has fewer than two classes"),
        early=False,
        fresh=True,
    ),
    "data_target_three_integer_classes": Bad(
        data_edit(_target(lambda f: [i % 3 for i in range(len(f))])),
        ("{data}", "target column 'risk'", "[0, 1, 2]", "binary classification only"),
        early=False,
    ),
    "data_target_three_words": Bad(
        data_edit(_target(lambda f: [("good", "bad", "unknown")[i % 3] for i in range(len(f))])),
        (
            "{data}",
            "target column 'risk'",
            "['bad', 'good', 'unknown']",
            "binary classification only",
        ),
        early=False,
    ),
    "data_target_one_stray_third_value": Bad(
        data_edit(_target(lambda f: [2 if i == 500 else v for i, v in enumerate(f["risk"])])),
        ("{data}", "target column 'risk'", "[0, 1, 2]", "binary classification only"),
        early=False,
    ),
    "data_target_continuous": Bad(
        data_edit(_target(lambda f: list(f["credit_amount"]))),
        # many classes: the first ten, then how many more
        ("{data}", "target column 'risk'", "and ", "binary classification only"),
        early=False,
    ),
    "data_positive_label_absent": Bad(
        spec_edit(lambda d: d.update(positive_label=7)),
        ("{spec}", "positive_label 7 does not occur in target 'risk'"),
        early=False,
    ),
    "data_favourable_label_absent": Bad(
        spec_edit(lambda d: d.update(favourable_label="approved")),
        ("{spec}", "favourable_label 'approved' does not occur in target 'risk'"),
        early=False,
    ),
    # a column of numbers that also holds words or booleans: the values shown
    "data_mixed_numbers_words_and_booleans": Bad(
        data_edit(_mixed("duration", ["unknown", True, False])),
        ("{data}", "'duration' holds ['False', 'True', 'unknown']"),
        early=False,
    ),
    "data_mixed_numbers_and_booleans": Bad(
        data_edit(_mixed("credit_amount", [True])),
        ("{data}", "'credit_amount' holds ['True']"),
        early=False,
    ),
    "data_mixed_two_placeholders": Bad(
        data_edit(_mixed("duration", ["n.a.", "?"])),
        ("{data}", "'duration' holds ['?', 'n.a.']"),
        early=False,
    ),
    "data_mixed_budgeted_feature": Bad(
        data_edit(_mixed("credit_amount", ["none", "lots"])),
        ("{data}", "'credit_amount' holds ['lots', 'none']"),
        early=False,
    ),
    "data_mixed_parquet_text": Bad(
        _parquet(_parquet_mixed_text),
        ("{folder}/data.parquet", "'duration' holds ['False', 'abc']"),
        early=False,
    ),
    # values no model trains on, where the suite has no range to catch them (a suite with
    # one blocks them as its finding, exit 3: tests/test_nonfinite.py)
    "data_infinite_feature": Bad(
        data_edit(
            _extreme(np.inf), suite=_without_range("credit_amount"), without=_ONLY_SUITE_AND_METRICS
        ),
        ("{data}", "'credit_amount'", "infinite", "{spec}"),
        early=False,
    ),
    "data_feature_beyond_1e15": Bad(
        data_edit(
            _extreme(1e308), suite=_without_range("credit_amount"), without=_ONLY_SUITE_AND_METRICS
        ),
        ("{data}", "'credit_amount'", "beyond", "{spec}"),
        early=False,
        absent=("1e+308",),
    ),
    "data_identifier_as_a_category": Bad(
        _identifier,
        (
            "{spec}",
            "categorical feature 'applicant_ref' has 750 distinct values in 750 rows",
            "`features`",
        ),
        early=False,
    ),
    # personal data as a group label
    "data_personal_column_declared_as_protected": Bad(
        data_edit(
            _with_names,
            spec={
                "pii_allowed": {"applicant": ["person_name"]},
                "protected_attributes": ["sex", "age", "applicant"],
            },
        ),
        ("{spec}", "protected_attributes: 'applicant' is declared personal"),
        absent=tuple(NAMES),
    ),
    "data_personal_column_declared_as_slice": Bad(
        data_edit(
            _with_names,
            spec={
                "pii_allowed": {"applicant": ["person_name"]},
                "features": [*FEATURES, "applicant"],
                "slices": ["housing", "applicant"],
            },
        ),
        ("{spec}", "slices: 'applicant' is declared personal"),
        absent=tuple(NAMES),
    ),
    "data_personal_column_found_in_a_group": Bad(
        data_edit(_with_names, spec={"protected_attributes": ["sex", "age", "applicant"]}),
        ("{data}", "{spec}", "protected_attributes: 'applicant' (person_name"),
        early=False,
        absent=tuple(NAMES),
    ),
}


# 6. Command lines: options that do not fit the pipeline, and onboarding a bad file (init
#    writes nothing then).
_INIT = ("init", "{data}", "--target", "risk", "--protected", "sex", "age", "--out", "{folder}/out")
_PLAIN = lambda folder, credit: make_pipeline(folder)  # noqa: E731

COMMAND_CASES = {
    "cli_partition_of_an_unpartitioned_source": Bad(
        _PLAIN,
        ("{spec}", "not partitioned; drop --partition"),
        argv=("run", "{spec}", "--partition", "2025-01"),
    ),
    "cli_monitor_without_partition": Bad(
        _PLAIN, ("--monitor needs --partition KEY",), argv=("run", "{spec}", "--monitor")
    ),
    "cli_backfill_of_an_unpartitioned_source": Bad(
        _PLAIN,
        ("{spec}", "not partitioned; use run"),
        argv=("backfill", "{spec}", "--from", "2025-01", "--to", "2025-02"),
    ),
    "cli_retrain_without_monitor": Bad(
        _PLAIN,
        ("--retrain needs --monitor",),
        argv=("backfill", "{spec}", "--from", "2025-01", "--to", "2025-02", "--retrain"),
    ),
    "cli_run_without_spec": Bad(
        _PLAIN, ("the following arguments are required: SPEC",), argv=("run",), usage=True
    ),
    "cli_misspelt_option": Bad(
        _PLAIN,
        ("unrecognized arguments: --partiton",),
        argv=("run", "{spec}", "--partiton", "x"),
        usage=True,
    ),
    "cli_policy_show_of_a_bad_policy": Bad(
        policy_edit(lambda d: d.update(bogus_key=1)),
        ("{policy}", "bogus_key: unknown key"),
        argv=("policy", "show", "{spec}"),
    ),
    "init_data_missing": Bad(
        lambda folder, credit: folder.mkdir(parents=True),
        ("data file not found", "{folder}/data.csv"),
        argv=_INIT,
    ),
    "init_not_csv_or_parquet": Bad(
        _PLAIN,
        ("{folder}/credit_risk.yaml", "expected a .csv or .parquet file"),
        argv=("init", "{spec}", "--target", "risk"),
    ),
    "init_target_missing": Bad(
        _PLAIN,
        ("{data}", "target column ['outcome'] not found"),
        argv=(*_INIT[:2], "--target", "outcome", *_INIT[4:]),
    ),
    "init_protected_missing": Bad(
        _PLAIN,
        ("{data}", "protected column(s) ['gender'] not found"),
        argv=(*_INIT[:5], "gender", *_INIT[7:]),
    ),
    "init_three_classes": Bad(
        data_edit(_target(lambda f: [i % 3 for i in range(len(f))])),
        ("{data}", "target column 'risk'", "binary classification only"),
        argv=_INIT,
    ),
    "init_bad_name": Bad(_PLAIN, ("--name 'Credit Risk'",), argv=(*_INIT, "--name", "Credit Risk")),
    "init_positive_label_absent": Bad(
        _PLAIN, ("--positive-label 'yes'", "'risk'"), argv=(*_INIT, "--positive-label", "yes")
    ),
}


def _all_cases() -> dict[str, Bad]:
    out: dict[str, Bad] = {}
    for table in (YAML_CASES, SPEC_CASES, POLICY_CASES, SUITE_CASES, DATA_CASES, COMMAND_CASES):
        assert not set(out) & set(table), set(out) & set(table)
        out |= table
    return out


CASES = _all_cases()


def test_the_table_holds_at_least_fifty_distinct_bad_inputs() -> None:
    assert len(CASES) >= 50, len(CASES)


def _params() -> list:
    return [
        pytest.param(
            name,
            marks=[
                *([pytest.mark.skip(reason=bad.skip)] if bad.skip else []),
                *([pytest.mark.xfail(reason=bad.xfail, strict=True)] if bad.xfail else []),
            ],
        )
        for name, bad in sorted(CASES.items())
    ]


@pytest.mark.parametrize("name", _params())
def test_a_bad_input_is_refused(
    name: str, tmp_path: Path, credit: pd.DataFrame, monkeypatch, request
) -> None:
    bad = CASES[name]
    folder = tmp_path / "p"
    bad.setup(folder, credit)
    paths = {
        "spec": folder / "credit_risk.yaml",
        "policy": folder / "policy.yaml",
        "suite": folder / "suite.json",
        "data": folder / "data.csv",
        "folder": folder,
    }
    # the files the spec names resolve to their real paths (the message shows those)
    paths = {k: str(v.resolve()) if v.exists() else str(v) for k, v in paths.items()}
    monkeypatch.chdir(tmp_path)  # a relative path, or a YAML payload's file, lands here
    state = tmp_path / "state"
    if not bad.early and not bad.fresh:
        shutil.copytree(request.getfixturevalue("empty_stores"), state)

    code, out, err = run_in_process([a.format_map(paths) for a in bad.argv], state=state)

    said = out + err
    assert code == EXIT_CONFIG, (code, said[-3000:])
    for trace in ("Traceback", 'File "'):
        assert trace not in said, said[-3000:]
    if bad.usage:
        assert err.startswith("usage: risk-assets"), err
        message = err
    else:
        assert err.startswith("risk-assets: error: "), err
        for line in err.splitlines():
            assert line.startswith(("risk-assets: ", "  ")), err
        message = err[len("risk-assets: error: ") :]
    for culprit in bad.culprits:
        culprit = culprit.format_map(paths)
        assert culprit in message, (culprit, message[-3000:])
    for text in bad.absent:
        assert text not in said, (text, said[-3000:])
    assert not (tmp_path / "pwned").exists() and not (folder / "pwned").exists()
    assert not (folder / "out").exists(), "init wrote files for a refused input"
    assert_nothing_kept(state, early=bad.early)


def test_the_in_process_runner_leaves_nothing_behind(tmp_path: Path) -> None:
    """Between cases: the environment, the root logger and the MLflow variables the CLI
    sets are as they were."""
    before_env, handlers = dict(os.environ), list(logging.getLogger().handlers)
    spec = make_pipeline(tmp_path / "p", spec={"name": "Credit Risk"})
    code, _, _ = run_in_process(["run", str(spec)], state=tmp_path / "state")
    assert code == EXIT_CONFIG
    code, _, err = run_in_process(["run", str(spec), "-v"], state=tmp_path / "state")
    assert code == EXIT_CONFIG and "Traceback" in err  # -v shows the trace, nothing else
    assert dict(os.environ) == before_env
    assert logging.getLogger().handlers == handlers
    assert not (tmp_path / "state").exists()


def test_an_unexpected_error_points_at_the_log_file_only_once_written(tmp_path, monkeypatch):
    """Exit 1 says where the stack trace is; before the state folder exists the log file is
    not written, and the message does not point at it."""
    import risk_assets.dagster._runner as runner

    def boom(path: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "load_pipeline", boom)
    spec = make_pipeline(tmp_path / "p")
    state = tmp_path / "state"
    code, _, err = run_in_process(["run", str(spec)], state=state)
    assert code == 1 and "RuntimeError: boom" in err
    assert "the stack trace is in" not in err and "-v shows the stack trace" in err
    assert not state.exists()

    state.mkdir()
    code, _, err = run_in_process(["run", str(spec)], state=state)
    log = state / "logs" / "risk-assets.log"
    assert code == 1 and f"the stack trace is in {log}" in err
    assert "Traceback" in log.read_text() and "RuntimeError: boom" in log.read_text()


# ---------------------------------------------------------------------------------------
# The installed executable: the same contract as a user gets it
# ---------------------------------------------------------------------------------------


def test_the_executable_refuses_a_yaml_bomb_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    spec = make_pipeline(tmp_path / "p")
    spec.write_text(spec.read_text() + billion_laughs())
    proc = run_cli("run", str(spec), env={"RISK_ASSETS_HOME": str(tmp_path / "state")}, fresh=True)
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    assert proc.stderr.startswith("risk-assets: error: ") and proc.stderr.count("\n") == 1
    assert str(spec) in proc.stderr and "MAX_ALIAS_NODES" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "state").exists()


def test_the_executable_reports_a_bad_spec_as_json(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: [unclosed\n")
    proc = run_cli(
        "run", str(spec), "--json", env={"RISK_ASSETS_HOME": str(tmp_path / "st")}, fresh=True
    )
    assert proc.returncode == EXIT_CONFIG
    payload = json.loads(proc.stdout)
    assert payload["status"] == "error" and "not valid YAML" in payload["error"]
    assert str(spec) in payload["error"]
    assert not (tmp_path / "st").exists()  # nothing was written for a bad spec
