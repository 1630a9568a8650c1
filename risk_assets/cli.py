"""The ``risk-assets`` command line: a stable contract for people, scripts and other tools.

Exit codes: 0 success (for ``run``: a model version was registered), 1 anything
unexpected, 2 a bad spec, policy, suite or data file, 3 a blocking gate stopped the model.
Heavy libraries are imported inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_BLOCKED = 0, 1, 2, 3

#: Contextual register profiles for ``init``: what each changes from the default.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "tier": "low",
        "auto_promote": True,
        "recall": None,
        "max_advantage": 0.1,
        "min_ratio": 0.8,
        "max_eo": None,
        "tier_comment": "tier low lets a model that passes every gate become champion "
        "automatically; set medium or high where a human must approve production.",
    },
    "lending": {
        "tier": "high",
        "auto_promote": False,
        "recall": None,
        "max_advantage": 0.1,
        "min_ratio": 0.8,
        "max_eo": 0.2,
        "tier_comment": "credit decisions are high-risk (EU AI Act Annex III): a model that "
        "passes the gates becomes a challenger and waits for approval.",
    },
    "healthcare": {
        "tier": "high",
        "auto_promote": False,
        "recall": 0.9,
        "max_advantage": 0.05,
        "min_ratio": 0.8,
        "max_eo": 0.1,
        "tier_comment": "patient impact: high tier, so production needs approval; recall on "
        "the positive class and membership leakage are held stricter.",
    },
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="risk-assets",
        description="ML risk controls as Dagster asset checks, with lineage in MLflow.",
        epilog="Exit codes: 0 ok / registered, 1 unexpected error, 2 bad spec, policy, suite or "
        "data file, 3 blocked by a gate. State: RISK_ASSETS_HOME (default ./.risk-assets), "
        "DAGSTER_HOME, MLFLOW_TRACKING_URI.",
    )
    from risk_assets import __version__

    p.add_argument("--version", action="version", version=f"risk-assets {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init", help="onboard a data set: write a spec, a profiled suite and a policy"
    )
    init.add_argument("data", metavar="DATA", help="CSV or Parquet file")
    init.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    init.add_argument(
        "--protected",
        nargs="+",
        default=[],
        metavar="COL",
        help="protected attributes (for fairness controls)",
    )
    init.add_argument("--name", help="pipeline name (default: from the file name)")
    init.add_argument(
        "--out",
        default="pipelines",
        metavar="DIR",
        help="folder for the spec (default: ./pipelines)",
    )
    init.add_argument(
        "--positive-label",
        metavar="LABEL",
        help="the label of the positive class (default 1 for 0/1 targets)",
    )
    init.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="default",
        help="register defaults: default, lending (credit decisions) or "
        "healthcare (patient impact)",
    )
    init.add_argument("--force", action="store_true", help="overwrite files that exist")

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

    lin = sub.add_parser("lineage", help="why is this model here? (from MLflow alone)")
    lin.add_argument("ref", metavar="MODEL[@ALIAS|/VERSION]")
    lin.add_argument("--json", action="store_true", help="print one JSON object")

    pol = sub.add_parser("policy", help="the risk register of a pipeline")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    show = pol_sub.add_parser("show", help="each risk with its control and its last result")
    show.add_argument("spec", metavar="SPEC", help="pipeline spec (YAML)")
    show.add_argument("--json", action="store_true", help="print one JSON object")

    sub.add_parser(
        "env", help="print shell exports that point dagster dev and mlflow ui at the state"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
            return _cmd_policy_show(args)
        if args.command == "env":
            from risk_assets.settings import current_settings

            print("\n".join(current_settings().env_lines()))
            return EXIT_OK
    except ConfigError as exc:
        return _fail(args, EXIT_CONFIG, str(exc))
    except RiskAssetsError as exc:
        return _fail(args, EXIT_UNEXPECTED, str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the contract: exit 1 (and one JSON object with --json)
        return _fail(args, EXIT_UNEXPECTED, f"{type(exc).__name__}: {exc}")
    return EXIT_UNEXPECTED


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"status": "error", "exit_code": code, "error": message}))
    print(f"risk-assets: error: {message}", file=sys.stderr)
    return code


def _quiet_libraries() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
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
        outcome = monitor_partition(args.spec, args.partition, log_to_console=not args.json)
    else:
        outcome = run_pipeline(args.spec, partition=args.partition, log_to_console=not args.json)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=None))
    else:
        print(outcome.render())
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
            outcome = monitor_partition(args.spec, key, log_to_console=False)
            line = outcome.status + (
                f" by {', '.join(outcome.flagged_by)}" if outcome.flagged_by else ""
            )
        else:
            outcome = run_pipeline(args.spec, partition=key, log_to_console=False)
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
                    done = run_requested(args.spec, req, log_to_console=False)
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

    from risk_assets.registry._mlflow import lineage
    from risk_assets.settings import current_settings

    s = current_settings()
    info = lineage(MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri), args.ref)
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
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------------------- policy


def _cmd_policy_show(args: argparse.Namespace) -> int:
    _quiet_libraries()
    from risk_assets.dagster._factory import load_pipeline
    from risk_assets.policy import checks_of
    from risk_assets.registry._mlflow import latest_gate_results
    from risk_assets.settings import current_settings

    pipeline = load_pipeline(args.spec)
    spec, policy = pipeline.spec.spec, pipeline.policy.policy
    checks = {}
    for check in checks_of(policy, spec.protected_attributes):
        checks.setdefault(check.risk.id, []).append(check.name)
    from mlflow import MlflowClient

    s = current_settings()
    client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri)
    run_id, results = latest_gate_results(client, spec.name)
    rows = []
    for risk in policy.risks:
        control = risk.control
        last = [results[c] for c in checks.get(risk.id, []) if c in results]
        rows.append(
            {
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
                "params": control.params if control else {},
                "checks": checks.get(risk.id, []),
                "last_result": None
                if not last
                else ("passed" if all(r.passed for r in last) else "FAILED"),
                "last_summary": "; ".join(r.summary for r in last) or None,
            }
        )
    doc = {
        "policy": policy.name,
        "tier": policy.tier,
        "file": str(pipeline.policy.path),
        "sha256": pipeline.policy.sha256,
        "last_run": run_id,
        "risks": rows,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
        return EXIT_OK
    print(
        f"risk register {policy.name} (tier {policy.tier}, auto-promote "
        f"{'on' if policy.promotion.auto_promote else 'off'}) {doc['file']}"
    )
    print(f"last gated run: {run_id or 'none yet'}")
    header = (
        "id",
        "category",
        "LxI",
        "rating",
        "owner",
        "treatment",
        "control",
        "severity",
        "check(s)",
        "last result",
    )
    table = [header] + [
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
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


# ---------------------------------------------------------------------------- init


def _cmd_init(args: argparse.Namespace) -> int:
    import re

    from risk_assets.controls._expectations import profile_suite
    from risk_assets.data import read_source, select_columns
    from risk_assets.errors import DataError, SpecError
    from risk_assets.spec import FORMATS, NAME_PATTERN

    data = Path(args.data).resolve()
    fmt = FORMATS.get(data.suffix.lower())
    if fmt is None:
        raise DataError(f"{data}: expected a .csv or .parquet file")
    df = read_source(data, fmt)
    df, features = select_columns(df, target=args.target, features=None, source=data)
    missing = [c for c in args.protected if c not in df.columns]
    if missing:
        raise DataError(
            f"{data}: protected column(s) {missing} not found; the file has {list(df.columns)}"
        )
    if args.target in args.protected:
        raise DataError(f"--protected must not name the target column {args.target!r}")
    name = args.name or re.sub(r"[^a-z0-9_]+", "_", data.stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"pipeline_{name}"
    if not NAME_PATTERN.match(name):
        raise SpecError(f"--name {name!r}: expected lower case letters, digits and underscores")
    out = Path(args.out).resolve()
    spec_path = out / f"{name}.yaml"
    suite_path = out / "expectations" / f"{name}.json"
    policy_path = out / "policies" / f"{name}.yaml"
    existing = [p for p in (spec_path, suite_path, policy_path) if p.exists()]
    if existing and not args.force:
        raise SpecError(f"would overwrite {', '.join(map(str, existing))}; use --force")

    import pandas as pd

    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(df[c].dtype)]
    labels = sorted(df[args.target].dropna().unique().tolist(), key=str)
    positive = 1 if set(labels) == {0, 1} else None
    if args.positive_label is not None:
        match = [v for v in labels if str(v) == args.positive_label]
        if not match:
            raise DataError(f"--positive-label {args.positive_label!r}: the target has {labels}")
        positive = match[0]
    profile = PROFILES[args.profile]
    suite = profile_suite(df, name=name, target=args.target, categorical=categorical)
    majority = float(df[args.target].value_counts(normalize=True).max())
    template = (Path(__file__).parent / "templates" / "policy.yaml").read_text(encoding="utf-8")
    numeric = [c for c in features if c not in categorical]
    policy_text = template.format(
        name=name,
        profile=args.profile,
        tier=profile["tier"],
        tier_comment=profile["tier_comment"],
        auto_promote=str(profile["auto_promote"]).lower(),
        majority_share=majority,
        accuracy_threshold=int(majority * 100) / 100,
        extra_thresholds=(
            f"\n          recall: {profile['recall']:.2f}  # on the positive class"
            if profile["recall"] is not None
            else ""
        ),
        extra_risks=_default_extra_risks(
            df, numeric=numeric, protected=list(args.protected), profile=profile
        ),
    )
    bands = {
        c: [float(df[c].median())]
        for c in args.protected
        if pd.api.types.is_numeric_dtype(df[c].dtype) and df[c].nunique() > 10
    }
    spec = {
        "name": name,
        "description": f"Predicts {args.target} from {data.name} (written by risk-assets init).",
        "source": {"path": os.path.relpath(data, out), "format": fmt},
        "target": args.target,
        **({"positive_label": positive} if positive is not None else {}),
        "protected_attributes": list(args.protected),
        **({"protected_bands": bands} if bands else {}),
        "estimator": {
            "class": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 1000},
        },
        "split": {"test_size": 0.25, "seed": 42, "stratify": True},
        "expectations": os.path.relpath(suite_path, out),
        "policy": os.path.relpath(policy_path, out),
        "registered_model": name,
    }
    import yaml

    suite_path.parent.mkdir(parents=True, exist_ok=True)
    policy_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    policy_path.write_text(policy_text, encoding="utf-8")
    spec_path.write_text(
        "# Pipeline spec written by `risk-assets init`; paths are relative to this file.\n"
        + yaml.safe_dump(spec, sort_keys=False),
        encoding="utf-8",
    )
    from risk_assets.dagster._factory import load_pipeline

    load_pipeline(spec_path)  # what init writes must load
    print(
        f"wrote {spec_path}\nwrote {suite_path} ({len(suite['expectations'])} expectations)\n"
        f"wrote {policy_path}\n\nrun it:  risk-assets run {os.path.relpath(spec_path)}"
    )
    return EXIT_OK


def _default_extra_risks(
    df: Any, *, numeric: list[str], protected: list[str], profile: dict[str, Any]
) -> str:
    """Register entries beyond the template's: privacy, drift, robustness, and with protected
    attributes, slices and fairness. Perturbation budgets are 5 % of each feature's
    standard deviation, in the feature's units."""

    def risk(rid, title, category, description, likelihood, impact, owner, control, params):
        import yaml

        entry = {
            "id": rid,
            "title": title,
            "category": category,
            "description": description,
            "likelihood": likelihood,
            "impact": impact,
            "owner": owner,
            "treatment": "mitigate",
            "control": {"name": control, "severity": "error", "params": params},
        }
        text = yaml.safe_dump([entry], sort_keys=False, width=88)
        return "".join("  " + line + "\n" for line in text.splitlines())

    parts = [
        risk(
            "PRIV-001",
            "Personal data in training data",
            "data_privacy",
            "PII the spec does not declare (pii_allowed) in values or column names.",
            2,
            5,
            "data-protection",
            "pii",
            {"max_share": 0.0, "sample_size": 10000},
        ),
        risk(
            "DRIFT-001",
            "Training data drifted from the data of the model in production",
            "drift",
            "Feature distributions against the champion's training data.",
            3,
            3,
            "data-engineering",
            "drift",
            {
                "backend": "scipy",
                "alpha": 0.01,
                "min_psi": 0.1,
                "max_drifted": 0,
                "sample_size": 20000,
            },
        ),
        risk(
            "INT-002",
            "Injected rows unlike the reference (poisoning)",
            "data_integrity",
            "Rows the reference window's local outlier factor calls outliers.",
            2,
            4,
            "data-engineering",
            "outliers",
            {"detector": "local_outlier_factor", "quantile": 0.01, "max_increase": 0.03},
        ),
        risk(
            "PRIV-002",
            "The model leaks who was in its training data",
            "privacy_leakage",
            "Membership-inference attack advantage on training vs held-out rows.",
            2,
            4,
            "data-protection",
            "membership_inference",
            {"max_advantage": profile["max_advantage"], "sample_size": 1000},
        ),
        risk(
            "ROB-002",
            "Invalid outputs on extreme or incomplete inputs",
            "robustness",
            "Values beyond the training range, missing values, unseen categories.",
            2,
            4,
            "model-risk",
            "stress",
            {"sample_size": 200},
        ),
    ]
    budgets = {
        c: float(f"{0.05 * float(df[c].std()):.3g}") for c in numeric if float(df[c].std()) > 0
    }
    if budgets:
        parts.append(
            risk(
                "ROB-001",
                "Decisions that flip under small changes to the inputs",
                "robustness",
                "Each numeric feature moves by up to 5 % of its standard deviation (its units).",
                3,
                3,
                "model-risk",
                "perturbation",
                {"budgets": budgets, "max_flip_rate": 0.1, "trials": 10, "sample_size": 500},
            )
        )
        parts.append(
            risk(
                "ROB-003",
                "Decisions an adversary can change within small budgets",
                "robustness",
                "A black-box evasion attack (HopSkipJump) within the same budgets.",
                2,
                3,
                "model-risk",
                "evasion",
                {"budgets": budgets, "max_success_rate": 0.2, "sample_size": 30},
            )
        )
    if protected:
        parts.append(
            risk(
                "PERF-003",
                "Performance collapses for a protected group",
                "model_performance",
                "Accuracy per protected group (and per spec slice).",
                3,
                4,
                "model-risk",
                "slices",
                {"metric": "accuracy", "min_value": 0.5, "max_gap": 0.25, "min_slice_size": 20},
            )
        )
        parts.append(
            risk(
                "FAIR-001",
                "Unfair decisions across protected groups",
                "fairness",
                "Demographic parity ratio across each protected attribute (four-fifths rule).",
                3,
                5,
                "model-risk",
                "fairness",
                {
                    "min_ratio": profile["min_ratio"],
                    "min_group_size": 20,
                    **(
                        {"max_equalized_odds_difference": profile["max_eo"]}
                        if profile["max_eo"] is not None
                        else {}
                    ),
                },
            )
        )
    return "".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
