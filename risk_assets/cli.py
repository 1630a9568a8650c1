"""The ``risk-assets`` command line: a stable contract for people, scripts and other tools.

Exit codes: 0 success (for ``run``: a model version was registered), 1 anything
unexpected, 2 a bad spec, policy, suite or data file, 3 a blocking gate stopped the model.
Heavy libraries are imported inside the commands so that ``--help`` stays fast.

Errors are one line on stderr (``risk-assets: error: ...``). Stack traces, the Dagster
run's step log and what MLflow, Great Expectations and Dagster log go to the log file,
``$RISK_ASSETS_HOME/logs/risk-assets.log``; ``-v``/``--verbose`` (or
``RISK_ASSETS_DEBUG=1``) shows them on stderr as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_BLOCKED = 0, 1, 2, 3

#: Set to 1 to show stack traces and the Dagster run's log on stderr (as ``--verbose``).
DEBUG_ENV = "RISK_ASSETS_DEBUG"
#: The log file, under the state folder (``RISK_ASSETS_HOME``).
LOG_FILE = Path("logs") / "risk-assets.log"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="risk-assets",
        description="ML risk controls as Dagster asset checks, with lineage in MLflow.",
        epilog="Exit codes: 0 ok / registered, 1 unexpected error, 2 bad spec, policy, suite or "
        "data file, 3 blocked by a gate, 4 a decision refused (approve, reject, rollback, audit). "
        "State: RISK_ASSETS_HOME (default ./.risk-assets), "
        "DAGSTER_HOME, MLFLOW_TRACKING_URI. Stack traces and the run log go to "
        "$RISK_ASSETS_HOME/logs/risk-assets.log (-v or RISK_ASSETS_DEBUG=1 also shows them).",
    )
    from risk_assets import __version__

    p.add_argument("--version", action="version", version=f"risk-assets {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_init(sub)
    _add_run_and_backfill(sub)

    lin = sub.add_parser("lineage", help="why is this model here? (from MLflow alone)")
    lin.add_argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
    lin.add_argument("--json", action="store_true", help="print one JSON object")

    pol = sub.add_parser("policy", help="the risk register of a pipeline")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    show = pol_sub.add_parser("show", help="each risk with its control and its last result")
    show.add_argument("spec", metavar="SPEC", help="pipeline spec (YAML)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    pol_sub.add_parser(
        "schema",
        help="the JSON schema of a policy file: every control and parameter (for editors)",
    )

    sub.add_parser(
        "env", help="print shell exports that point dagster dev and mlflow ui at the state"
    )
    from risk_assets import governance  # the standard library only: --help stays fast

    governance.add_parsers(sub)
    from risk_assets import report  # lazy inside: --help stays fast

    report.add_parser(sub)
    from risk_assets import compliance

    compliance.add_parser(sub)
    for command in sub.choices.values():
        # after the command as well as before it; SUPPRESS keeps a -v given before it
        with contextlib.suppress(argparse.ArgumentError):
            command.add_argument(
                "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                help=_VERBOSE_HELP,
            )  # fmt: skip
    return p


_VERBOSE_HELP = (
    "show stack traces and the Dagster run's log on stderr (always written to the log "
    "file; RISK_ASSETS_DEBUG=1 does the same)"
)


def _add_init(sub: Any) -> None:
    from risk_assets.onboarding import PROFILES  # the standard library only: --help stays fast

    init = sub.add_parser(
        "init", help="onboard a data set: write a spec, a profiled suite and a policy"
    )
    init.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    init.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    init.add_argument(
        "--protected",
        nargs="+",
        action="extend",
        default=[],
        metavar="COL",
        help="protected attributes (for fairness controls; not model features); repeatable",
    )
    init.add_argument(
        "--serving",
        metavar="DATA",
        help="recent scoring inputs (CSV or Parquet) for the training/serving skew gate",
    )
    init.add_argument("--name", help="pipeline name (default: from the file name)")
    init.add_argument(
        "--out",
        default="pipelines",
        metavar="DIR",
        help="folder for the spec (default: ./pipelines)",
    )
    init.add_argument(
        "--favourable-label",
        metavar="LABEL",
        help="the decision that favours a person, for fairness (default: for 0/1 and yes/no "
        "targets 1/yes unless the target's name reads as an adverse event such as default or "
        "readmitted; else the value that reads as favourable, e.g. good/approved; init says "
        "which and why)",
    )
    init.add_argument(
        "--positive-label",
        metavar="LABEL",
        help="the class whose probability is the score (default: 1 or yes, else the "
        "favourable label)",
    )
    init.add_argument(
        "--auto-promote",
        action="store_true",
        help="tier low with automatic promotion: a model that passes every gate becomes "
        "champion at once (default profile only)",
    )
    init.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="register defaults: default, lending (credit decisions) or "
        "healthcare (patient impact)",
    )
    init.add_argument(
        "--defs",
        metavar="DIR",
        help="also write DIR/NAME/defs.yaml: the pipeline as a Dagster component "
        "(risk_assets.dagster.RiskAssetsPipeline) pointing at the spec",
    )
    init.add_argument("--force", action="store_true", help="overwrite files that exist")


def _add_run_and_backfill(sub: Any) -> None:
    run = sub.add_parser("run", help="materialise a pipeline and its gates in one process")
    run.add_argument("spec", metavar="SPEC", help="pipeline spec (YAML)")
    run.add_argument(
        "--partition", metavar="KEY", help="the partition to train (partitioned sources)"
    )
    run.add_argument(
        "--monitor",
        action="store_true",
        help="score the partition with the champion and monitor it, instead of training",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object")

    back = sub.add_parser(
        "backfill",
        help="run a range of partitions one after another in this process",
        description=(
            "Runs each partition from --from to --to in this process, one after another, so "
            "that the embedded SQLite instance is never written by two processes. A backfill "
            "the daemon executes in parallel is launched from the Dagster UI, on a "
            "PostgreSQL-backed instance."
        ),
    )
    back.add_argument("spec", metavar="SPEC", help="pipeline spec (YAML)")
    back.add_argument("--from", dest="start", required=True, metavar="KEY")
    back.add_argument("--to", dest="end", required=True, metavar="KEY")
    back.add_argument(
        "--monitor",
        action="store_true",
        help="score and monitor each partition, then evaluate the retraining sensor",
    )
    back.add_argument(
        "--retrain",
        action="store_true",
        help="with --monitor: execute the sensor's retraining requests right away",
    )
    back.add_argument("--json", action="store_true", help="print one JSON object")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.verbose = bool(getattr(args, "verbose", False)) or _debug_env()
    with _logging(verbose=args.verbose) as log_file:
        args.log_file = log_file
        return _main(args)


def _debug_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _main(args: argparse.Namespace) -> int:
    from risk_assets.errors import ConfigError, RiskAssetsError

    try:
        if args.command == "init":
            return _cmd_init(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "backfill":
            return _cmd_backfill(args)
        if args.command == "lineage":
            return _cmd_lineage(args)
        if args.command == "policy":
            return _cmd_policy(args)
        if args.command in ("approve", "reject", "rollback", "pending", "audit"):
            return _cmd_governance(args)
        if args.command == "compliance":
            _quiet_libraries()
            from risk_assets import compliance

            return compliance.run(args)
        if args.command == "report":
            _quiet_libraries()
            from risk_assets import report

            return report.run(args)
        if args.command == "env":
            from risk_assets.settings import current_settings, ensure_embedded_dagster_home

            settings = current_settings()
            if settings.is_embedded_dagster_home:
                # dagster dev started from these exports gets the embedded instance's
                # settings (one registration of a model at a time) from its first run
                ensure_embedded_dagster_home(settings)
            print("\n".join(settings.env_lines()))
            return EXIT_OK
    except ConfigError as exc:
        return _fail(args, EXIT_CONFIG, str(exc), exc)
    except RiskAssetsError as exc:
        return _fail(args, EXIT_UNEXPECTED, str(exc), exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the contract: exit 1 (and one JSON object with --json)
        return _fail(args, EXIT_UNEXPECTED, _unexpected(exc), exc)
    return EXIT_UNEXPECTED


def _unexpected(exc: BaseException) -> str:
    """``Class: message``, and the first line of the error that caused it when it says
    something more: a wrapper's message ("too many retries for DB connection") does not
    name the server it could not reach; its cause does."""
    text = f"{type(exc).__name__}: {exc}"
    root, seen = exc, {id(exc)}
    while (cause := _cause(root)) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(cause))
    first = next(iter(str(root).strip().splitlines()), "")
    if root is not exc and first and first not in text:
        text += f" ({type(root).__name__}: {first})"
    return text


def _cause(exc: BaseException) -> BaseException | None:
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _cmd_governance(args: argparse.Namespace) -> int:
    """A decision refused (maker-checker, changed evidence, a broken audit trail) is exit 4,
    with the reason; anything else goes the usual way."""
    _quiet_libraries()
    from risk_assets import governance
    from risk_assets.errors import ApprovalError, GateEvidenceError, IntegrityError

    try:
        return governance.run(args)
    except (ApprovalError, GateEvidenceError, IntegrityError) as exc:
        return _fail(args, governance.EXIT_REFUSED, f"refused: {exc}", exc)


def _fail(
    args: argparse.Namespace, code: int, message: str, exc: BaseException | None = None
) -> int:
    """One line on stderr (and one JSON object with --json); the trace to the log file,
    and to stderr with --verbose."""
    if exc is not None:
        _LOG.error(
            f"{args.command}: exit {code}: {message}", exc_info=exc, extra={_FILE_ONLY: True}
        )
    if getattr(args, "json", False):
        print(json.dumps({"status": "error", "exit_code": code, "error": message}))
    print(f"risk-assets: error: {message}", file=sys.stderr)
    if exc is not None and getattr(args, "verbose", False):
        traceback.print_exception(exc, file=sys.stderr)
    elif exc is not None and code == EXIT_UNEXPECTED and getattr(args, "log_file", None):
        if Path(args.log_file).is_file():
            print(
                f"risk-assets: the stack trace is in {args.log_file} (-v shows it)", file=sys.stderr
            )
        else:  # no state folder yet: the log file was not written (see _StateLogHandler)
            print("risk-assets: -v shows the stack trace", file=sys.stderr)
    return code


_LOG = logging.getLogger("risk_assets.cli")
#: A record for the log file only (the user has already seen its message on stderr).
_FILE_ONLY = "risk_assets_file_only"


class _StateLogHandler(logging.FileHandler):
    """The log file under the state folder, opened on the first record once the state
    folder exists: a command that logs nothing, or a bad spec refused before anything ran
    on a state folder never made, writes nothing (``-v`` shows the trace then). A log that
    cannot be written never fails the command."""

    def __init__(self, path: Path, state: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self._state = state

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None and not self._state.is_dir():
            return
        super().emit(record)

    def _open(self):  # noqa: ANN202 - logging's own signature
        Path(self.baseFilename).parent.mkdir(exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's API
        pass


class _OneLine(logging.Formatter):
    """Our own warnings as the user sees them: one line, no trace (that is in the file)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"risk-assets: {record.levelname.lower()}: {record.getMessage()}"


class _Ours(logging.Filter):
    """risk-assets' own records, except the Dagster run log replayed into the file (the
    Dagster console shows it live with --verbose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        return (
            name.startswith("risk_assets")
            and not name.startswith("risk_assets.runs")
            and not getattr(record, _FILE_ONLY, False)
        )


class _NotRunLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name.startswith("risk_assets.runs") or getattr(record, _FILE_ONLY, False)
        )


@contextlib.contextmanager
def _logging(*, verbose: bool) -> Iterator[Path]:
    """Every log record to the log file under the state folder; on stderr only risk-assets'
    own warnings, one line each (with ``verbose``: every record, with its trace).

    Library loggers (MLflow, alembic, Great Expectations, Dagster's python loggers) then
    propagate to the root logger instead of printing to stderr, and Python warnings are
    logged. What was there before is put back on leaving (``main`` may run in-process).
    """
    from risk_assets.settings import current_settings

    # MLflow configures a stderr handler of its own on import unless told not to
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    state = current_settings().state_dir
    path = state / LOG_FILE
    file_handler = _StateLogHandler(path, state)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    console = logging.StreamHandler(sys.stderr)
    if verbose:
        console.setLevel(logging.INFO)
        console.addFilter(_NotRunLog())
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        console.setLevel(logging.WARNING)
        console.addFilter(_Ours())
        console.setFormatter(_OneLine())
    root = logging.getLogger()
    level = root.level
    root.addHandler(file_handler)
    root.addHandler(console)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(console)
        root.removeHandler(file_handler)
        root.setLevel(level)
        file_handler.close()


def _quiet_libraries() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    from risk_assets.settings import bound_mlflow_retries

    bound_mlflow_retries()
    import logging
    import warnings

    # Dagster marks Output(data_version=...) as beta; users need not see that on every run.
    warnings.filterwarnings("ignore", message=r".*is currently in beta.*")
    for name in ("mlflow", "alembic", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from risk_assets.dagster._runner import monitor_partition, run_pipeline
    from risk_assets.errors import ConfigError

    if args.monitor:
        if args.partition is None:
            raise ConfigError("--monitor needs --partition KEY")
        outcome = monitor_partition(args.spec, args.partition, log_to_console=args.verbose)
    else:
        outcome = run_pipeline(args.spec, partition=args.partition, log_to_console=args.verbose)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=None))
    else:
        print(outcome.render())
    if outcome.status == "error":
        print(f"risk-assets: error: {outcome.error}", file=sys.stderr)
    return outcome.exit_code


# ---------------------------------------------------------------------------- backfill


def _cmd_backfill(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from risk_assets.dagster._runner import (
        monitor_partition,
        partitions_between,
        run_pipeline,
        run_requested,
        tick_retraining_sensor,
    )
    from risk_assets.errors import ConfigError

    if args.retrain and not args.monitor:
        raise ConfigError("--retrain needs --monitor")
    keys = partitions_between(args.spec, args.start, args.end)
    say = (lambda *a: None) if args.json else print  # noqa: E731
    say(
        f"backfill {args.start}..{args.end}: {len(keys)} partition(s) in-process, one after "
        "another in this process (no daemon; SQLite is never written by two processes)"
    )
    verbose = not args.json
    report: dict[str, Any] = {"mode": "in-process", "partitions": [], "retraining": []}
    errors = 0
    for key in keys:
        if args.monitor:
            outcome = monitor_partition(args.spec, key, log_to_console=args.verbose)
            line = outcome.status + (
                f" by {', '.join(outcome.flagged_by)}" if outcome.flagged_by else ""
            )
        else:
            outcome = run_pipeline(args.spec, partition=key, log_to_console=args.verbose)
            line = outcome.status + (
                f": {outcome.model}/{outcome.version} ({', '.join(outcome.aliases)})"
                if outcome.status == "registered"
                else f" by {', '.join(outcome.blocked_by)}"
                if outcome.blocked_by
                else f": {outcome.error}"
            )
        errors += outcome.status == "error"
        report["partitions"].append(outcome.to_json())
        say(f"  {key}: {line}")
        if verbose and outcome.status != "registered" and outcome.status != "passed":
            say("    " + outcome.render().replace("\n", "\n    "))
        if not args.monitor:
            continue
        requests, skip = tick_retraining_sensor(args.spec)
        executed: set[str] = set()
        while requests:
            for req in requests:
                if req.run_key in executed:
                    continue  # already run here: the daemon would skip a repeated run key
                executed.add(req.run_key)
                say(f"    sensor: {req.job_name} partition {req.partition_key} ({req.run_key})")
                report["retraining"].append(
                    {"job": req.job_name, "partition": req.partition_key, "run_key": req.run_key}
                )
                if args.retrain:
                    done = run_requested(args.spec, req, log_to_console=args.verbose)
                    if hasattr(done, "render"):
                        say("    " + done.render().replace("\n", "\n    "))
                        report["retraining"][-1]["outcome"] = done.to_json()
            if not args.retrain:
                break
            requests = [
                r for r in tick_retraining_sensor(args.spec)[0] if r.run_key not in executed
            ]
    if args.json:
        print(json.dumps(report))
    return EXIT_UNEXPECTED if errors else EXIT_OK


# ---------------------------------------------------------------------------- lineage


def _cmd_lineage(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from mlflow import MlflowClient

    from risk_assets.audit import open_audit_log
    from risk_assets.registry._mlflow import lineage
    from risk_assets.settings import current_settings

    s = current_settings()
    client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)
    info = lineage(client, args.ref, audit=open_audit_log())
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(render_lineage(info))
    return EXIT_OK


def render_lineage(info: dict[str, Any]) -> str:
    d, r = info["data"], info["run"]
    lines = [
        f"{info['model']} version {info['version']}"
        + (f"  [{', '.join(info['aliases'])}]" if info["aliases"] else ""),
        f"  registered   {info['registered_at']} by {info['registered_by'] or 'unknown'}",
    ]
    if info.get("candidate_version"):
        lines.append(f"  copied from  {info['candidate_version']}")
    if info.get("promoted_by"):
        lines.append(f"  promoted by  {info['promoted_by']}: {info.get('promotion_reason') or ''}")
    lines += [
        f"  model sha256 {info['model_sha256']}",
        f"  run          {r['run_id']} (experiment {r['experiment_id']}) started {r['started_at']} "
        f"by {r['user']}",
        f"  dagster run  {r['dagster_run_id']}  partition {r['partition']}",
        f"  code version {info['code_version']}",
        *(
            [
                f"  window       {info['window'].get('span')}: "
                + ", ".join(
                    f"{w['partition']} ({w['rows']} rows, sha256 {str(w['snapshot_sha256'])[:12]})"
                    for w in info["window"].get("partitions", [])
                )
            ]
            if info.get("window")
            else []
        ),
        f"  data source  {d['source']}",
        f"    raw snapshot sha256       {d['raw_snapshot_sha256']}",
        f"    validated snapshot sha256 {d['snapshot_sha256']}",
        f"    split seed {d['split']['seed']}, test size {d['split']['test_size']}, "
        f"stratified {d['split']['stratified']}",
    ]
    for ds in d["datasets"]:
        lines.append(
            f"    dataset {ds['context']:<9} {ds['name']}: {ds.get('rows')} rows, "
            f"sha256 {ds.get('sha256')}"
        )
    lines += [
        f"  suite sha256  {info['suite_sha256']}",
        f"  policy sha256 {info['policy_sha256']} ({info['policy']})",
        f"  spec sha256   {info['spec_sha256']}",
        "  metrics       "
        + ", ".join(f"{k[5:]} {v:.4f}" for k, v in sorted(info["metrics"].items())),
        "  gates:",
    ]
    for g in info["gates"]:
        lines.append(
            f"    {'PASS' if g['passed'] else 'FAIL'} {g['name']:<36} {g['risk_id']:<10} "
            f"{'blocking' if g['blocking'] else 'warning '} value {_num(g['value'])} "
            f"threshold {_num(g['threshold'])}  {g['summary']}"
        )
    if info.get("report"):
        lines.append(
            f"  risk report   {info['report']}  (a copy: risk-assets report "
            f"{info['model']}/{info['version']} --out DIR)"
        )
    audit = info.get("audit")
    if audit:
        lines.append(f"  audit trail   {audit['chain']} ({audit['log']})")
        for d in audit["decisions"]:
            lines.append(
                f"    {d['when'][:19]} {d['action']:<12} {d['version']:<28} by {d['by']}"
                + (f": {d['reason']}" if d["reason"] else "")
            )
        for w in audit["warnings"]:
            lines.append(f"  WARNING: {w}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------------------- policy


def _cmd_policy(args: argparse.Namespace) -> int:
    if args.policy_command == "schema":
        from risk_assets.policy import policy_json_schema

        print(json.dumps(policy_json_schema(), indent=1))
        return EXIT_OK
    return _cmd_policy_show(args)


def _risk_row(risk: Any, checks: list[str], results: dict[str, Any]) -> dict[str, Any]:
    """One risk of the register with its control and the last result of its checks."""
    control = risk.control
    last = [results[c] for c in checks if c in results]
    return {
        "id": risk.id,
        "title": risk.title,
        "category": risk.category,
        "likelihood": risk.likelihood,
        "impact": risk.impact,
        "score": risk.score,
        "rating": risk.rating,
        "owner": risk.owner,
        "treatment": risk.treatment,
        "control": control.name if control else None,
        "severity": control.severity if control else None,
        "params": control.params.model_dump(mode="json", exclude_unset=True) if control else {},
        "checks": checks,
        "last_result": None
        if not last
        else ("passed" if all(r.passed for r in last) else "FAILED"),
        "last_summary": "; ".join(r.summary for r in last) or None,
    }


def _cmd_policy_show(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from risk_assets.catalogue import checks_of
    from risk_assets.pipeline import load_pipeline
    from risk_assets.registry._mlflow import latest_gate_results
    from risk_assets.settings import current_settings

    pipeline = load_pipeline(args.spec)
    spec, policy = pipeline.spec.spec, pipeline.policy.policy
    checks: dict[str, list[str]] = {}
    for check in checks_of(policy, spec.protected_attributes):
        checks.setdefault(check.risk.id, []).append(check.name)
    from mlflow import MlflowClient

    s = current_settings()
    client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)
    run_id, results = latest_gate_results(client, spec.name)
    results = {**results, **_monitoring_results(pipeline)}
    doc = {
        "policy": policy.name,
        "tier": policy.tier,
        "file": str(pipeline.policy.path),
        "sha256": pipeline.policy.sha256,
        "last_run": run_id,
        "risks": [_risk_row(r, checks.get(r.id, []), results) for r in policy.risks],
    }
    if args.json:
        print(json.dumps(doc, indent=1))
        return EXIT_OK
    print(
        f"risk register {policy.name} (tier {policy.tier}, auto-promote "
        f"{'on' if policy.promotion.auto_promote else 'off'}) {doc['file']}"
    )
    print(f"last gated run: {run_id or 'none yet'}")
    _print_table(
        ("id", "category", "LxI", "rating", "owner", "treatment", "control", "severity",
         "check(s)", "last result"),
        [
            (
                r["id"],
                r["category"],
                f"{r['likelihood']}x{r['impact']}={r['score']}",
                r["rating"],
                r["owner"],
                r["treatment"],
                r["control"] or "-",
                r["severity"] or "-",
                ", ".join(r["checks"]) or "-",
                r["last_result"] or "never run",
            )
            for r in doc["risks"]
        ],
    )  # fmt: skip
    return EXIT_OK


@dataclass(frozen=True)
class _Verdict:
    """A check's last result as ``policy show`` reports it."""

    passed: bool
    summary: str


def _monitoring_results(pipeline: Any) -> dict[str, _Verdict]:
    """The monitoring checks' latest verdicts per partition, from the Dagster instance
    (they are not on a candidate's MLflow run); a check never evaluated is left out."""
    if not pipeline.spec.partitioned:
        return {}
    from risk_assets.dagster._history import monitoring_history
    from risk_assets.dagster._runner import _instance

    return {
        h.check: _Verdict(not h.failed, h.summary())
        for h in monitoring_history(pipeline, _instance())
        if h.evaluated
    }


def _print_table(header: tuple[str, ...], rows: list[tuple]) -> None:
    table = [header, *rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------------- init


def _cmd_init(args: argparse.Namespace) -> int:
    from risk_assets.onboarding import onboard

    print(onboard(args))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
