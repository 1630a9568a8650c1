"""Data-gate evidence for a candidate, and the training window of a partitioned pipeline.

A data gate records its verdict beside the snapshot it judged; the candidate carries the
current records (made under the policy and suite in force) to MLflow, where registration
verifies them. A window of partitions is combined into one content-addressed snapshot;
its data-gate evidence is a summary per gate over the window's partitions.
"""

import hashlib
from typing import Any

import dagster as dg

from risk_assets.catalogue import checks_of
from risk_assets.errors import DataError

__all__ = ["combine_window", "data_gate_records"]


def _data_checks(pipeline: Any) -> list[Any]:
    spec = pipeline.spec.spec
    return checks_of(pipeline.policy.policy, spec.protected_attributes, assets=("validated_data",))


def _current_evidence(store: Any, pipeline: Any, subject: str, check: str) -> dict | None:
    """A data gate's record for a snapshot, if it was made under the policy and suite in
    force; a stale record counts as none, so registration finds no evidence."""
    rec = store.get_evidence(subject, check)
    if rec is None or rec.get("policy_sha256") != pipeline.policy.sha256:
        return None
    if rec.get("suite_sha256") not in (None, pipeline.suite_sha256):
        return None
    return rec


def data_gate_records(
    store: Any, pipeline: Any, validated: dict, window: list[dict] | None, run_id: str
) -> tuple[list[dict], dict | None]:
    """The data gates' current records for the candidate's data, and the window record
    (None without a window)."""
    if window is None:
        records = [
            rec
            for check in _data_checks(pipeline)
            if (rec := _current_evidence(store, pipeline, validated["sha256"], check.name))
            is not None
        ]
        return records, None
    return _window_evidence(store, pipeline, window, validated["sha256"], run_id)


def _window_evidence(
    store: Any, pipeline: Any, window: list[dict], combined_sha: str, run_id: str
) -> tuple[list[dict], dict]:
    """Per data gate, a summary record over the window's partitions (about the combined
    snapshot), and the window record with every partition's own evidence."""
    parts = [{**w, "gates": {}} for w in window]
    summaries = []
    for check in _data_checks(pipeline):
        missing, failed = [], []
        for part in parts:
            rec = _current_evidence(store, pipeline, part["sha256"], check.name)
            if rec is None:
                missing.append(part["partition"])
                continue
            part["gates"][check.name] = rec
            if not rec.get("passed"):
                failed.append(part["partition"])
        summaries.append(
            _window_summary(pipeline, check, parts, missing, failed, combined_sha, run_id)
        )
    return summaries, {"combined_sha256": combined_sha, "partitions": parts}


def _window_summary(
    pipeline: Any,
    check: Any,
    parts: list[dict],
    missing: list,
    failed: list,
    combined_sha: str,
    run_id: str,
) -> dict:
    from risk_assets.registry._mlflow import GateRecord

    n = len(parts)
    ok = n - len(missing) - len(failed)
    summary = f"{ok} of {n} partitions of the window passed"
    if failed:
        summary += f"; failed in {', '.join(failed)}"
    if missing:
        summary += f"; no current evidence for {', '.join(missing)}"
    first = parts[0]["gates"].get(check.name) or {}
    every_suite = all(p["gates"].get(check.name, {}).get("suite_sha256") for p in parts)
    return GateRecord(
        check=check.name,
        risk_id=first.get("risk_id") or check.risk.id,
        asset="validated_data",
        blocking=bool(first.get("blocking", True)),
        passed=not missing and not failed,
        value=float(len(missing) + len(failed)),
        threshold=0.0,
        summary=summary,
        subject_sha256=combined_sha,
        policy_sha256=pipeline.policy.sha256,
        suite_sha256=pipeline.suite_sha256 if every_suite else None,
        dagster_run_id=run_id,
        figures={"partitions": float(n), "passed_partitions": float(ok)},
    ).to_dict()


def combine_window(store: Any, pipeline: Any, loaded_input: dict) -> tuple[dict, list[dict]]:
    """The validated partitions of a training window as one content-addressed snapshot.

    Returns:
        A validated-data value for the combined frame, and the window: each partition's
        key, snapshot, raw snapshot, source and rows, in partition order.
    """
    import pandas as pd

    from risk_assets.estimator import categorical_columns

    spec = pipeline.spec.spec
    values = loaded_input if "sha256" not in loaded_input else {"": loaded_input}
    parts = [values[k] for k in sorted(values)]
    if not parts:
        raise dg.Failure("the training window holds no partition", allow_retries=False)
    columns = parts[0]["columns"]
    for part in parts[1:]:
        if part["columns"] != columns:
            raise DataError(
                f"{part['source']}: columns differ from those of partition "
                f"{parts[0]['partition']} ({parts[0]['source']}); a window needs one schema"
            )
    combined = pd.concat([store.get(part["sha256"]) for part in parts], ignore_index=True)
    ref = store.put(combined)
    features = parts[0]["features"]
    keys = ("partition", "sha256", "raw_sha256", "source", "rows")
    window = [{k: part[k] for k in keys} for part in parts]
    raw_ids = ",".join(w["raw_sha256"] for w in window)
    value = {
        **ref.to_dict(),
        # the window's raw data is named by the hash of its partitions' raw snapshot hashes
        "raw_sha256": hashlib.sha256(raw_ids.encode()).hexdigest(),
        "source": f"{pipeline.spec.source_path} {window[0]['partition']}"
        f"..{window[-1]['partition']}",
        "target": spec.target,
        "features": features,
        "categorical": categorical_columns(combined, features, spec.categorical_features),
    }
    return value, window
