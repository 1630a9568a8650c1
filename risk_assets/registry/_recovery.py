"""What a run that died left behind: finished where its decision was recorded, removed
where it was not, and said so.

A run killed part-way (SIGKILL, a lost machine) leaves its MLflow run ``RUNNING`` (killed
in training) or without a verdict (killed in its gates or registration) for ever, and may
leave a model version it made before the audit trail recorded it, or a promotion recorded
whose ``champion`` alias never moved. :func:`recover` finds the MLflow runs a Dagster run
left without a verdict when it died or failed (:func:`abandoned_runs`; how a Dagster run
ended, ``ended``, is asked of the Dagster instance by the caller), and for each:

- keeps every version it made whose registration or promotion is in the audit trail (its
  evidence is complete), anchoring it if the anchor tags were not written;
- removes every version it made that the audit trail does not record and no alias points
  at (nothing can depend on it; no alias, tag or record would explain it otherwise);
- marks the run ``FAILED`` with the verdict ``abandoned`` and a description of the above.

Then the model's ``champion`` is made to follow the audit trail's last promotion or
rollback, when the alias is still on the version that decision replaced (the decision was
recorded and its alias move interrupted); an alias moved by anyone else is left, for
lineage to warn about. Every change to the registry is itself an audit record
(``recovery``). It all holds the audit trail's decisions lock, as promotions do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from risk_assets.registry._lineage import RunLineage, RunVerdict, VersionTags
from risk_assets.registry._mlflow import (
    AUDIT_SEQ_TAG,
    CHAMPION,
    _anchor,
    candidates_name,
    find_champion,
    last_decision,
    recorded_decision,
)
from risk_assets.settings import current_user

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["Recovery", "abandoned_runs", "recover"]


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` did about one dead run (or the champion alias)."""

    subject: str  # "MLflow run <id> of Dagster run <id>" or "<model> champion"
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    def render(self) -> str:
        parts = [f"recovered {self.subject}"]
        if self.removed:
            parts.append("removed " + ", ".join(self.removed) + " (never recorded)")
        if self.kept:
            parts.append("kept " + ", ".join(self.kept) + " (recorded in the audit trail)")
        if self.completed:
            parts.append("completed " + ", ".join(self.completed))
        return "; ".join(parts)


#: How many of an experiment's latest runs are looked at for a missing verdict.
RECENT_RUNS = 200


def abandoned_runs(
    client: MlflowClient,
    experiment_id: str,
    model_name: str,
    ended: Callable[[str], str | None],
) -> list[tuple[Any, str]]:
    """The runs a Dagster run left without a verdict when it ended other than in success
    (killed, failed or cancelled), with how it ended: still ``RUNNING`` (killed in
    training), or ``FINISHED`` without a verdict (stopped in its gates or registration):
    among the experiment's :data:`RECENT_RUNS` latest runs, and any older run a version
    without an audit anchor was made from."""
    runs = {
        r.info.run_id: r
        for r in client.search_runs(
            [experiment_id], order_by=["attributes.start_time DESC"], max_results=RECENT_RUNS
        )
    }
    for name in (candidates_name(model_name), model_name):
        for mv in _versions(client, f"name='{name}'"):
            if not mv.tags.get(AUDIT_SEQ_TAG) and mv.run_id and mv.run_id not in runs:
                runs[mv.run_id] = client.get_run(mv.run_id)
    out = []
    for run in runs.values():
        if run.info.status not in ("RUNNING", "FINISHED"):
            continue
        if RunVerdict.from_tags(run.data.tags).verdict is not None:
            continue
        dagster_run = RunLineage.from_tags(run.data.tags).dagster_run_id
        how = ended(dagster_run) if dagster_run else None
        if how is not None and how != "SUCCESS":
            out.append((run, how))
    return out


def recover(
    client: MlflowClient,
    audit: Any,
    *,
    experiment: str,
    model_name: str,
    ended: Callable[[str], str | None],
) -> list[Recovery]:
    """Finish or clean up what dead runs of one pipeline left (see the module).

    Args:
        experiment: the pipeline's MLflow experiment.
        model_name: its production model (``<model_name>-candidates`` holds its candidates).
        ended: how the Dagster run of an id ended (its status's name, e.g. ``FAILURE``;
            or None while it is in progress or when the instance does not know the run
            (another instance's run is left to that instance).

    Returns:
        What was done, one entry per dead run (and one for the champion alias); empty
        when nothing was left behind.
    """
    exp = client.get_experiment_by_name(experiment)
    done: list[Recovery] = []
    with audit.decisions():
        runs = abandoned_runs(client, exp.experiment_id, model_name, ended) if exp else []
        for run, how in runs:
            done.append(_recover_run(client, audit, run, how, model_name))
        alias = _follow_last_decision(client, audit, model_name)
        if alias is not None:
            done.append(alias)
    return done


def _recover_run(client: MlflowClient, audit: Any, run: Any, how: str, model_name: str) -> Recovery:
    from mlflow.entities import RunTag

    run_id = run.info.run_id
    dagster_run = RunLineage.from_tags(run.data.tags).dagster_run_id
    removed, kept = [], []
    for name, action in ((candidates_name(model_name), "registration"), (model_name, "promotion")):
        for mv in _versions(client, f"name='{name}' and run_id='{run_id}'"):
            ref = f"{name}/{mv.version}"
            rec = recorded_decision(audit, action, name, str(mv.version))
            if rec is not None:
                if mv.tags.get(AUDIT_SEQ_TAG) != str(rec.seq):
                    _anchor(client, name, str(mv.version), rec)
                kept.append(ref)
            elif getattr(mv, "aliases", None):
                kept.append(f"{ref} (aliased {', '.join(mv.aliases)}: left for a person)")
            else:
                client.delete_model_version(name, mv.version)
                removed.append(ref)
    subject = f"MLflow run {run_id} of Dagster run {dagster_run}"
    description = (
        f"**Abandoned**: Dagster run {dagster_run} ended ({how}) before this run got a verdict."
    )
    if removed:
        description += f" Removed {', '.join(removed)}: made, but never recorded."
    if kept:
        description += f" Kept {', '.join(kept)}: recorded in the audit trail."
    verdict = RunVerdict(verdict=RunVerdict.ABANDONED, description=description)
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in verdict.to_tags().items()])
    client.set_terminated(run_id, status=verdict.run_status)
    if removed:
        audit.append(
            "recovery",
            actor=current_user(),
            model=model_name,
            run_id=run_id,
            dagster_run_id=dagster_run,
            reason=f"Dagster run {dagster_run} ended ({how}) before MLflow run {run_id} got a "
            "verdict",
            details={"removed": removed, "kept": kept},
        )
    return Recovery(subject, removed=removed, kept=kept)


def _versions(client: MlflowClient, filter_string: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(filter_string)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    return sorted(found, key=lambda mv: int(mv.version))


def _replaced_ref(model_name: str, decision: Any) -> str | None:
    """The champion the decision replaced, as ``"<model>/<version>"`` or ``"none"``; None
    when the record does not say (records written before it was recorded)."""
    if decision.action == "promotion":
        return decision.details.get("replaced")
    before = decision.details.get("from")
    return "none" if before is None else f"{model_name}/{before}"


def _follow_last_decision(client: MlflowClient, audit: Any, model_name: str) -> Recovery | None:
    """Move ``champion`` to the audit trail's last decision when a crash stopped that
    decision between its record and its alias."""
    decision = last_decision(audit, model_name)
    if decision is None:
        return None
    champion = find_champion(client, model_name)
    if champion is not None and str(champion.version) == decision.version:
        return None
    current = "none" if champion is None else f"{model_name}/{champion.version}"
    if _replaced_ref(model_name, decision) != current:
        return None  # moved since by someone else: lineage says so, a person decides
    mv = client.get_model_version(model_name, decision.version)
    if VersionTags.from_tags(mv.tags).model_sha256 != decision.hashes.get("model_sha256"):
        return None  # its evidence does not match the record: never alias it
    if mv.tags.get(AUDIT_SEQ_TAG) is None:
        _anchor(client, model_name, decision.version, decision)
    client.set_registered_model_alias(model_name, CHAMPION, decision.version)
    ref = f"{model_name}/{decision.version}"
    audit.append(
        "recovery",
        actor=current_user(),
        model=model_name,
        version=decision.version,
        run_id=decision.run_id,
        reason=(
            f"the {decision.action} of {ref} (audit record {decision.seq}) was recorded but "
            f"its {CHAMPION} alias never moved; moved it from {current}"
        ),
        details={"decision": decision.seq, "replaced": current},
    )
    return Recovery(f"{model_name} {CHAMPION}", completed=[f"{CHAMPION} -> {ref}"])
