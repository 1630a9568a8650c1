"""Hostile model files swapped in under registered versions, through every path of
risk-assets that loads a model.

A monthly pipeline is trained, gated and approved for real (``credit_risk``: versions 1 and
2 promoted, 2 the champion, candidate 3 awaiting approval, one batch scored); then the
files of one version's MLflow artefact folder are replaced on disk, as anyone with write
access to the artefact store could:

- a cloudpickle payload whose ``__reduce__`` writes a marker file when it is unpickled, in
  the skops file's place, or as MLflow's own cloudpickle sklearn flavour;
- a skops file of a type outside the trusted list (its ``__setstate__`` writes the marker),
  listed as trusted in the MLmodel;
- an MLmodel whose model path leaves its folder (``../``, an absolute path);
- an MLmodel with code paths and a loader module of its own, or whose python_function
  flavour unpickles a ``python_model``.

Every path that loads a model refuses each of them: the operation fails naming the file,
the marker is never written, no alias moves, nothing is registered and no decision is
recorded. MLflow's own loaders run the same files (see the last tests): the README tells
users to load a registered version through risk-assets only.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import cloudpickle
import pandas as pd
import pytest
import yaml

from conftest import PIPELINES, ROOT, mlflow_client, registered_versions, using_state
from risk_assets.audit import open_audit_log
from risk_assets.cli import main
from risk_assets.errors import IntegrityError
from risk_assets.registry import (
    RunLineage,
    VersionTags,
    file_sha256,
    load_model_dir,
    load_version_model,
)
from risk_assets.registry._mlflow import AUDIT_SEQ_TAG, download_model
from risk_assets.registry._models import MODEL_FILE

MODEL = "credit_risk"
CANDIDATES = f"{MODEL}-candidates"
#: The monitoring batch the fixture scores with the clean champion (its stored value feeds
#: the monitoring checks' inputs), and the ones the tests try to score or train on.
SCORED, TO_SCORE, TO_TRAIN = "2025-07", "2025-08", "2025-05"
HASH_TAG = "risk_assets.model_sha256"
#: Set by the CLI for its own process; the tests clear it so that what refuses is
#: risk-assets' loader, in MLflow's default environment.
PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


# -- the hostile payloads --------------------------------------------------------------------


class WritesMarker:
    """Unpickled, it writes the marker file: pickle calls ``Path.write_text``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


class WritesMarkerOnLoad:
    """A type that no trusted list names: skops restores it with ``__setstate__``, which
    writes the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("restored by skops")
        self.__dict__.update(state)


UNTRUSTED = f"{WritesMarkerOnLoad.__module__}.{WritesMarkerOnLoad.__qualname__}"


def _edit_mlmodel(folder: Path, edit: Callable[[dict], None]) -> None:
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    edit(meta["flavors"])
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))


def _point_at(flavors: dict, path: str) -> None:
    flavors["sklearn"]["pickled_model"] = path
    flavors["python_function"]["model_path"] = path


def _pickle_as_skops_file(folder: Path, marker: Path, scratch: Path) -> None:
    (folder / MODEL_FILE).write_bytes(cloudpickle.dumps(WritesMarker(marker)))


def _cloudpickle_flavour(folder: Path, marker: Path, scratch: Path) -> None:
    """What ``mlflow.sklearn.save_model`` writes by default, with the payload."""
    (folder / "model.pkl").write_bytes(cloudpickle.dumps(WritesMarker(marker)))

    def edit(flavors: dict) -> None:
        flavors["sklearn"]["serialization_format"] = "cloudpickle"
        _point_at(flavors, "model.pkl")

    _edit_mlmodel(folder, edit)


def _untrusted_skops(folder: Path, marker: Path, scratch: Path) -> None:
    import skops.io as sio

    sio.dump(WritesMarkerOnLoad(marker), folder / MODEL_FILE)
    _edit_mlmodel(folder, lambda f: f["sklearn"]["skops_trusted_types"].append(UNTRUSTED))


def _path_to_parent(folder: Path, marker: Path, scratch: Path) -> None:
    _edit_mlmodel(folder, lambda f: _point_at(f, f"../{MODEL_FILE}"))


def _absolute_path(folder: Path, marker: Path, scratch: Path) -> None:
    outside = scratch / "elsewhere" / MODEL_FILE
    outside.parent.mkdir()
    shutil.copyfile(folder / MODEL_FILE, outside)  # the genuine bytes: its hash would match
    _edit_mlmodel(folder, lambda f: _point_at(f, str(outside)))


def _code_paths(folder: Path, marker: Path, scratch: Path) -> None:
    """As ``save_model(code_paths=...)`` writes it, with a loader module of its own that
    writes the marker when imported."""
    (folder / "code").mkdir()
    (folder / "code" / "hostile_loader.py").write_text(
        f"from pathlib import Path\n\nPath({str(marker)!r}).write_text('imported')\n"
    )

    def edit(flavors: dict) -> None:
        flavors["sklearn"]["code"] = "code"
        flavors["python_function"].update(code="code", loader_module="hostile_loader")

    _edit_mlmodel(folder, edit)


def _pickled_python_model(folder: Path, marker: Path, scratch: Path) -> None:
    """The sklearn flavour intact; the python_function flavour, which MLflow's pyfunc
    loader and ``mlflow models serve`` follow, unpickles a ``python_model``."""
    (folder / "python_model.pkl").write_bytes(cloudpickle.dumps(WritesMarker(marker)))

    def edit(flavors: dict) -> None:
        pyfunc = flavors["python_function"]
        pyfunc.pop("model_path")
        pyfunc.update(
            loader_module="mlflow.pyfunc.model",
            python_model="python_model.pkl",
            cloudpickle_version=cloudpickle.__version__,
        )

    _edit_mlmodel(folder, edit)


@dataclass(frozen=True)
class Hostile:
    id: str
    swap: Callable[[Path, Path, Path], None]  # (model folder, marker, scratch folder)
    refusal: str  # the loader's reason (a regex), given the version's recorded hash
    file: str  # the file the refusal names
    #: the reason when the swapped skops file's own hash is the expected one (whoever
    #: swapped it also rewrote the hashes); None when the skops file is the genuine one
    own_hash_refusal: str | None = None


HOSTILE = [
    Hostile(
        "pickle-as-skops-file",
        _pickle_as_skops_file,
        "does not match the recorded",
        MODEL_FILE,
        own_hash_refusal=r"not a skops file \(not a zip archive\)",
    ),
    Hostile("cloudpickle-flavour", _cloudpickle_flavour, "only 'skops' models", "MLmodel"),
    Hostile(
        "untrusted-skops-type",
        _untrusted_skops,
        "does not match the recorded",
        MODEL_FILE,
        own_hash_refusal=re.escape(f"untrusted types ['{UNTRUSTED}']"),
    ),
    Hostile("path-to-parent", _path_to_parent, "leaves the model folder", "MLmodel"),
    Hostile("absolute-path", _absolute_path, "leaves the model folder", "MLmodel"),
    Hostile("code-paths", _code_paths, "code paths are refused", "MLmodel"),
    Hostile(
        "pickled-python-model",
        _pickled_python_model,
        "loader_module is 'mlflow.pyfunc.model'",
        "MLmodel",
    ),
]
BY_ID = {h.id: h for h in HOSTILE}


def _id(hostile: Hostile) -> str:
    return hostile.id


every_hostile = pytest.mark.parametrize("hostile", HOSTILE, ids=_id)


# -- the registry they are swapped into ------------------------------------------------------


def _monthly_pipeline(folder: Path) -> Path:
    """The shipped monthly pipeline under the name credit_risk, each model trained on one
    month, with a register of a data gate, two model gates (the champion gate among them)
    and a monitoring check, at tier medium: one approval promotes."""
    shutil.copytree(PIPELINES / "data" / "monthly", folder / "data" / "monthly")
    shutil.copy(ROOT / "expectations" / "credit_risk_monthly.json", folder / "suite.json")
    spec = yaml.safe_load((PIPELINES / "credit_risk_monthly.yaml").read_text())
    spec.pop("schedule")
    spec.update(
        name=MODEL,
        registered_model=MODEL,
        training_window=1,
        expectations="suite.json",
        policy="policy.yaml",
    )
    policy = yaml.safe_load((PIPELINES / "policies" / "credit_risk_monthly.yaml").read_text())
    params = {
        "PERF-001": {"thresholds": {"roc_auc": 0.5}},
        "PERF-002": {"metric": "roc_auc", "tolerance": 0.5},
        "MON-002": {"alpha": 0.01, "min_psi": 0.5},
    }
    policy["risks"] = [r for r in policy["risks"] if r["id"] in {"DQ-001", *params}]
    for risk in policy["risks"]:
        if risk["id"] in params:
            risk["control"]["params"] = params[risk["id"]]
    policy.update(tier="medium", promotion={"auto_promote": False})
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    path = folder / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _as(monkeypatch, user: str) -> None:
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, user)


def _cli(*args: str) -> tuple[int, dict, str]:
    """The CLI in this process with ``--json``: exit code, payload, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--json"])
    text = out.getvalue().strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = json.loads(text.splitlines()[-1]) if text else {}
    return code, payload, err.getvalue()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    spec = _monthly_pipeline(root / "p")
    with using_state(root / "state"), pytest.MonkeyPatch.context() as mp:
        for partition, approver in (("2025-02", "alice"), ("2025-03", "alice"), ("2025-04", None)):
            _as(mp, "maker")
            code, out, _ = _cli("run", str(spec), "--partition", partition)
            assert code == 0 and out["status"] == "registered", out
            if approver:
                _as(mp, approver)
                code, out, _ = _cli("approve", MODEL, out["version"], "--reason", "validated")
                assert code == 0 and out["action"] == "promotion", out
        code, out, _ = _cli("run", str(spec), "--partition", SCORED, "--monitor")
        assert code == 0 and out["champion"] == f"{MODEL}/2", out
        _as(mp, "maker")
        yield SimpleNamespace(state=root / "state", spec=spec)


def _model_folder(client, name: str, version: str) -> Path:
    """The version's model folder in the artefact store (its run's LoggedModel)."""
    mv = client.get_model_version(name, version)
    model_id = RunLineage.from_tags(client.get_run(mv.run_id).data.tags).logged_model_id
    return Path(urlparse(client.get_logged_model(model_id).artifact_location).path)


@contextmanager
def _swapped(
    client, name: str, version: str, hostile: Hostile, marker: Path, scratch: Path
) -> Iterator[Path]:
    """The version's stored model files replaced by ``hostile``; put back on leaving."""
    folder = _model_folder(client, name, version)
    saved = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    try:
        hostile.swap(folder, marker, scratch)
        yield folder
    finally:
        shutil.rmtree(folder)
        for rel, data in saved.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)


def _state(client) -> dict:
    return {
        "versions": registered_versions(client),
        "aliases": {m: dict(client.get_registered_model(m).aliases) for m in (MODEL, CANDIDATES)},
        "records": len(open_audit_log().records()),
    }


def _nothing_happened(client, before: dict, marker: Path) -> list:
    """Assert the hostile file never ran and nothing changed; return the audit records the
    operation appended: gate verdicts and refusals only, no decision."""
    assert not marker.exists(), "the hostile file was run"
    after = _state(client)
    assert after["versions"] == before["versions"], "something was registered"
    assert after["aliases"] == before["aliases"], "an alias moved"
    new = open_audit_log().records()[before["records"] :]
    decided = [r.action for r in new if r.action not in ("gate", "refusal")]
    assert decided == [], "a decision was recorded"
    return new


def _stored(registry, asset: str, partition: str) -> dict:
    """An asset's value as Dagster hands it to its checks."""
    return json.loads((registry.state / "io" / MODEL / asset / f"{partition}.json").read_text())


@pytest.fixture
def marker(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv(PICKLE_SWITCH, raising=False)
    return tmp_path / "marker"


# -- the loader and the public API -----------------------------------------------------------


@every_hostile
def test_the_loader_refuses_the_folder_as_downloaded(registry, hostile, marker, tmp_path):
    client = mlflow_client()
    mv = client.get_model_version(MODEL, "2")
    recorded = VersionTags.from_tags(mv.tags).model_sha256
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        local = Path(download_model(client, mv.run_id, str(tmp_path / "download")))
        with pytest.raises(IntegrityError, match=hostile.refusal) as err:
            load_model_dir(local, expected_sha256=recorded)
        assert hostile.file in str(err.value)
        if hostile.own_hash_refusal:  # every hash rewritten too: refused for what it is
            with pytest.raises(IntegrityError, match=hostile.own_hash_refusal):
                load_model_dir(local, expected_sha256=file_sha256(local / MODEL_FILE))
    assert not marker.exists()


@every_hostile
def test_load_version_model_refuses_a_swapped_champion(registry, hostile, marker, tmp_path):
    client = mlflow_client()
    before = _state(client)
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        with pytest.raises(IntegrityError, match=hostile.refusal) as err:
            load_version_model(client, client.get_model_version(MODEL, "2"))
    assert hostile.file in str(err.value)
    _nothing_happened(client, before, marker)


@pytest.mark.parametrize(
    "hostile", [BY_ID["pickle-as-skops-file"], BY_ID["untrusted-skops-type"]], ids=_id
)
def test_a_swap_with_its_hash_tag_rewritten_is_refused(registry, hostile, marker, tmp_path):
    """Whoever swaps the skops file may rewrite the version's hash tag too: the audit trail's
    hash refuses it. A version the trail has no record of (registered before it, not
    anchored) is checked against its tag alone: the file is refused for what it is."""
    client = mlflow_client()
    mv = client.get_model_version(MODEL, "2")
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path) as folder:
        client.set_model_version_tag(MODEL, "2", HASH_TAG, file_sha256(folder / MODEL_FILE))
        try:
            with pytest.raises(IntegrityError, match="the tag was rewritten"):
                load_version_model(client, client.get_model_version(MODEL, "2"))
            client.delete_model_version_tag(MODEL, "2", AUDIT_SEQ_TAG)
            with pytest.raises(IntegrityError, match=hostile.own_hash_refusal):
                load_version_model(
                    client,
                    client.get_model_version(MODEL, "2"),
                    open_audit_log(tmp_path / "a-trail-without-it.jsonl"),
                )
        finally:
            client.set_model_version_tag(MODEL, "2", HASH_TAG, mv.tags[HASH_TAG])
            client.set_model_version_tag(MODEL, "2", AUDIT_SEQ_TAG, mv.tags[AUDIT_SEQ_TAG])
    assert not marker.exists()
    assert load_version_model(client, client.get_model_version(MODEL, "2"))


# -- the Dagster layer: model gates, the champion gate, monitoring ---------------------------


def _gate_inputs(registry, partition: str):
    """The inputs of the model gates, from the candidate value Dagster hands them."""
    from risk_assets.dagster._inputs import GateInputs
    from risk_assets.dagster._resources import MlflowResource, SnapshotStoreResource
    from risk_assets.pipeline import load_pipeline

    return GateInputs(
        pipeline=load_pipeline(registry.spec),
        store=SnapshotStoreResource().get_store(),
        candidate=_stored(registry, "candidate_model", partition),
        mlflow=MlflowResource(),
    )


@every_hostile
def test_the_model_gates_refuse_a_swapped_candidate(registry, hostile, marker, tmp_path):
    """The candidate as the model gates load it."""
    client = mlflow_client()
    inputs = _gate_inputs(registry, "2025-04")
    assert inputs.candidate["run_id"] == client.get_model_version(CANDIDATES, "3").run_id
    before = _state(client)
    with _swapped(client, CANDIDATES, "3", hostile, marker, tmp_path):
        with pytest.raises(IntegrityError, match=hostile.refusal) as err:
            inputs.model  # noqa: B018 - the property loads the model
    assert hostile.file in str(err.value)
    _nothing_happened(client, before, marker)


@every_hostile
def test_the_champion_gate_refuses_a_swapped_champion(registry, hostile, marker, tmp_path):
    """The champion as the champion gate loads it (the runs below go through Dagster)."""
    client = mlflow_client()
    inputs = _gate_inputs(registry, "2025-04")
    before = _state(client)
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        with pytest.raises(IntegrityError, match=hostile.refusal) as err:
            inputs.champion()
    assert hostile.file in str(err.value)
    assert inputs.extra["champion_version"] == f"{MODEL}/2"  # named in the gate's evidence
    _nothing_happened(client, before, marker)


@pytest.mark.parametrize(
    "hostile", [BY_ID["pickle-as-skops-file"], BY_ID["pickled-python-model"]], ids=_id
)
def test_a_run_against_a_swapped_champion_is_blocked_by_the_champion_gate(
    registry, hostile, marker, tmp_path
):
    """``risk-assets run``: the champion gate fails closed, naming the file; the candidate
    is not registered and the gate's record in the audit trail says failed. (One content
    swap and one MLmodel swap: the gate's wiring does not depend on which check refused.)"""
    client = mlflow_client()
    before = _state(client)
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        code, out, _ = _cli("run", str(registry.spec), "--partition", TO_TRAIN)
    assert code == 3 and out["status"] == "blocked", out
    assert out["blocked_by"] == ["no_worse_than_champion"]
    gate = next(g for g in out["gates"] if g["name"] == "no_worse_than_champion")
    assert gate["passed"] is False
    assert "IntegrityError: " in gate["summary"] and hostile.file in gate["summary"]
    assert re.search(hostile.refusal, gate["summary"])
    new = _nothing_happened(client, before, marker)
    verdicts = [
        r.details["passed"] for r in new if r.details.get("check") == "no_worse_than_champion"
    ]
    assert verdicts == [False]
    (refusal,) = [r for r in new if r.action == "refusal"]
    assert "no_worse_than_champion [PERF-002] failed" in refusal.reason


@every_hostile
def test_monitoring_refuses_to_score_with_a_swapped_champion(registry, hostile, marker, tmp_path):
    """``risk-assets run --partition KEY --monitor``: nothing is scored, nothing stored."""
    client = mlflow_client()
    before = _state(client)
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        code, out, _ = _cli("run", str(registry.spec), "--partition", TO_SCORE, "--monitor")
    assert code == 1 and out["status"] == "error", out
    assert "IntegrityError" in out["error"] and hostile.file in out["error"]
    assert re.search(hostile.refusal, out["error"])
    assert not (registry.state / "io" / MODEL / "scored_batch" / f"{TO_SCORE}.json").exists()
    assert _nothing_happened(client, before, marker) == []


@every_hostile
def test_the_monitoring_checks_refuse_a_swapped_champion(registry, hostile, marker, tmp_path):
    """The champion as the monitoring checks load it, from a batch it scored before."""
    from risk_assets.dagster._inputs import MonitorInputs
    from risk_assets.dagster._resources import MlflowResource, SnapshotStoreResource
    from risk_assets.pipeline import load_pipeline

    client = mlflow_client()
    scored = _stored(registry, "scored_batch", SCORED)
    assert scored["champion"] == f"{MODEL}/2"
    inputs = MonitorInputs(
        pipeline=load_pipeline(registry.spec),
        store=SnapshotStoreResource().get_store(),
        mlflow=MlflowResource(),
        scored=scored,
    )
    before = _state(client)
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        with pytest.raises(IntegrityError, match=hostile.refusal) as err:
            inputs.model  # noqa: B018 - the property loads the model
    assert hostile.file in str(err.value)
    _nothing_happened(client, before, marker)


# -- decisions and lineage through the CLI ---------------------------------------------------


@every_hostile
def test_rollback_refuses_a_swapped_earlier_champion(
    registry, hostile, marker, tmp_path, monkeypatch
):
    client = mlflow_client()
    before = _state(client)
    _as(monkeypatch, "bob")
    with _swapped(client, MODEL, "1", hostile, marker, tmp_path):
        code, out, err = _cli("rollback", MODEL, "--reason", "incident 7")
    assert code == 4 and out["status"] == "error", out
    assert re.search(hostile.refusal, out["error"]) and hostile.file in out["error"]
    assert err.startswith("risk-assets: error: refused: ") and "Traceback" not in err
    _nothing_happened(client, before, marker)
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == "2"


@every_hostile
def test_approve_refuses_a_swapped_challenger(registry, hostile, marker, tmp_path, monkeypatch):
    """An approval verifies the evidence before anything else, on the whole model folder
    as MLflow's loaders would follow it (its MLmodel too, not only the skops file's hash):
    an approver's approval of a swapped challenger is refused, naming the file."""
    client = mlflow_client()
    before = _state(client)
    _as(monkeypatch, "alice")
    with _swapped(client, CANDIDATES, "3", hostile, marker, tmp_path):
        code, out, _ = _cli("approve", MODEL, "3", "--reason", "looks fine")
    _nothing_happened(client, before, marker)
    assert code == 4 and out["status"] == "error", out
    assert re.search(hostile.refusal, out["error"]) and hostile.file in out["error"], out
    assert f"model artefact: model/{hostile.file}:" in out["error"], out["error"]


@every_hostile
def test_lineage_reads_no_model_file(registry, hostile, marker, tmp_path):
    """``risk-assets lineage`` answers from MLflow's records and the audit trail: it never
    opens the artefact, so a swapped one runs nothing (nor is it flagged)."""
    client = mlflow_client()
    before = _state(client)
    recorded = client.get_model_version(MODEL, "2").tags[HASH_TAG]
    with _swapped(client, MODEL, "2", hostile, marker, tmp_path):
        code, info, _ = _cli("lineage", f"{MODEL}@champion")
    assert code == 0 and (info["version"], info["model_sha256"]) == ("2", recorded)
    _nothing_happened(client, before, marker)


# -- MLflow's own loaders, and the safe way the README shows ---------------------------------


def test_mlflow_own_loaders_run_what_risk_assets_refuses(registry, tmp_path, monkeypatch):
    """The danger the README warns of, in MLflow's default environment: its pyfunc loader
    unpickles the cloudpickle flavour swapped in under the registered version, and its
    sklearn loader trusts the types the swapped MLmodel lists. Ours runs neither."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    monkeypatch.delenv(PICKLE_SWITCH, raising=False)
    client = mlflow_client()
    uri = f"models:/{MODEL}/2"
    for hostile, load in (
        (BY_ID["cloudpickle-flavour"], mlflow.pyfunc.load_model),
        (BY_ID["untrusted-skops-type"], mlflow.sklearn.load_model),
    ):
        ours, theirs = tmp_path / f"ours-{hostile.id}", tmp_path / f"mlflow-{hostile.id}"
        with _swapped(client, MODEL, "2", hostile, ours, tmp_path / "ours"):
            with pytest.raises(IntegrityError):
                load_version_model(client, client.get_model_version(MODEL, "2"))
        assert not ours.exists()
        with (
            _swapped(client, MODEL, "2", hostile, theirs, tmp_path / "mlflow"),
            _use_tracking_uri(client.tracking_uri),
        ):
            download = tmp_path / f"download-{hostile.id}"
            download.mkdir()
            load(uri, dst_path=str(download))
        assert theirs.exists(), f"MLflow's {load.__module__} did not run {hostile.id}"


def _readme_snippet() -> str:
    """The Python block of the README's section on loading a registered model safely."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Loading a registered model safely", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_snippet_loads_the_champion_and_refuses_a_swap(
    registry, marker, tmp_path, monkeypatch
):
    from risk_assets.settings import current_settings

    settings = current_settings()  # what `eval "$(risk-assets env)"` exports
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", settings.registry_uri)
    code = compile(_readme_snippet(), "README.md", "exec")
    namespace: dict = {}
    exec(code, namespace)
    batch = pd.read_csv(registry.spec.parent / "data" / "monthly" / f"applications_{SCORED}.csv")
    features = yaml.safe_load(registry.spec.read_text())["features"]
    assert set(namespace["model"].predict(batch[features])) <= {0, 1}

    client = mlflow_client()
    with _swapped(client, MODEL, "2", BY_ID["cloudpickle-flavour"], marker, tmp_path):
        with pytest.raises(IntegrityError, match="only 'skops' models"):
            exec(code, {})
    assert not marker.exists()
