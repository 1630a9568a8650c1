"""``risk-assets init``: onboard a data set as a pipeline.

Reads the data, decides the labels, the features, the tier and the budgets (saying what it
decided and what the user must decide), and writes a spec, a profiled expectation suite and
a risk register made of the catalogue's default risks (:mod:`risk_assets.catalogue`).
What it writes must load.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PROFILES", "onboard"]

#: Contextual register profiles for ``init``: what each changes from the default.
PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "tier": "medium",
        "auto_promote": False,
        "recall": None,
        "max_advantage": 0.1,
        "min_ratio": 0.8,
        "max_eo": None,
        "tier_comment": "tier medium: a model that passes every gate is registered as the "
        "challenger and waits for a person's approval before it becomes champion; tier low "
        "with auto_promote: true (init --auto-promote) promotes it the moment it passes.",
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


@dataclass
class _Report:
    """What init decided for the user, and what the user must decide before the first run."""

    notes: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Paths:
    data: Path
    fmt: str
    out: Path
    name: str
    spec: Path
    suite: Path
    policy: Path
    serving: Path | None
    defs: Path | None  # the component's defs.yaml (init --defs)


def _paths(args: Any) -> _Paths:
    """Where init reads and writes; refuses to overwrite without --force."""
    from risk_assets.data import read_source
    from risk_assets.errors import DataError, SpecError
    from risk_assets.spec import FORMATS, NAME_PATTERN

    data = Path(args.data).resolve()
    fmt = FORMATS.get(data.suffix.lower())
    if fmt is None:
        raise DataError(f"{data}: expected a .csv or .parquet file")
    name = args.name or re.sub(r"[^a-z0-9_]+", "_", data.stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"pipeline_{name}"
    if not NAME_PATTERN.match(name):
        raise SpecError(f"--name {name!r}: expected lower case letters, digits and underscores")
    out = Path(args.out).resolve()
    spec, suite = out / f"{name}.yaml", out / "expectations" / f"{name}.json"
    policy = out / "policies" / f"{name}.yaml"
    defs_dir = getattr(args, "defs", None)
    defs = Path(defs_dir).resolve() / name / "defs.yaml" if defs_dir else None
    existing = [p for p in (spec, suite, policy, defs) if p is not None and p.exists()]
    if existing and not args.force:
        raise SpecError(f"would overwrite {', '.join(map(str, existing))}; use --force")
    serving = None
    if args.serving is not None:
        serving = Path(args.serving).resolve()
        if FORMATS.get(serving.suffix.lower()) is None:
            raise DataError(f"{serving}: expected a .csv or .parquet file")
        read_source(serving, FORMATS[serving.suffix.lower()], nrows=5)
    return _Paths(data, fmt, out, name, spec, suite, policy, serving, defs)


def _read(args: Any, paths: _Paths) -> tuple[Any, list[str]]:
    """The data (target and every other column) and the protected attributes."""
    from risk_assets.data import read_source, select_columns
    from risk_assets.errors import DataError, SpecError

    raw = read_source(paths.data, paths.fmt)
    raw, _ = select_columns(raw, target=args.target, features=None, source=paths.data)
    protected = list(dict.fromkeys(args.protected))
    missing = [c for c in protected if c not in raw.columns]
    if missing:
        raise DataError(
            f"{paths.data}: protected column(s) {missing} not found; the file has "
            f"{list(raw.columns)}"
        )
    if args.target in protected:
        raise DataError(f"--protected must not name the target column {args.target!r}")
    if args.auto_promote and args.profile != "default":
        raise SpecError(f"--auto-promote is not allowed with --profile {args.profile}")
    return raw, protected


def _labels(args: Any, target: Any, spec_name: str, report: _Report) -> tuple[Any, Any]:
    """The favourable and positive labels, written explicitly, each with its reason."""
    from risk_assets.errors import DataError
    from risk_assets.labels import conventional_positive, match_label, suggest_labels
    from risk_assets.profiling import describe_labels

    classes = sorted(target.dropna().unique().tolist(), key=str)

    def named(option: str, value: str) -> Any:
        found = match_label(value, classes)
        if found is None:
            raise DataError(f"{option} {value!r}: the target {args.target!r} has {classes}")
        return found

    sure = True
    if args.favourable_label is not None:
        favourable, fav_reason = named("--favourable-label", args.favourable_label), "given"
    else:
        favourable, fav_reason, sure = suggest_labels(target, target=args.target)
    if args.positive_label is not None:
        positive, pos_reason = named("--positive-label", args.positive_label), "given"
    else:
        positive, pos_reason = conventional_positive(target, favourable)
    if len(classes) > 2:
        report.notes.append(f"target {args.target!r} has {len(classes)} classes: metrics are macro")
    report.notes.append(f"target {args.target!r}: {describe_labels(target)}")
    report.notes.append(f"favourable_label {favourable!r} ({fav_reason})")
    report.notes.append(f"positive_label {positive!r} ({pos_reason})")
    if not sure:
        report.todo.append(
            f"check favourable_label {favourable!r} in {spec_name}: init could not tell "
            "which decision favours a person"
        )
    return favourable, positive


def _features(
    raw: Any, target: str, protected: list[str], paths: _Paths, report: _Report
) -> list[str]:
    """Every column but the target, the protected attributes, what looks like PII and what
    identifies rows (a reference, a row number, free text with a value per row)."""
    from risk_assets.errors import DataError
    from risk_assets.profiling import identifier_columns, pii_columns

    pii = pii_columns(raw.drop(columns=[target]))
    left_out = {c: k for c, k in pii.items() if c not in protected}
    features = [c for c in raw.columns if c != target and c not in protected]
    features = [c for c in features if c not in left_out]
    # one-hot encoding a column of one value per row would take rows x rows cells; a row
    # number as a number teaches the model the file's order
    identifiers = identifier_columns(raw, features)
    features = [c for c in features if c not in identifiers]
    for col, why in identifiers.items():
        report.notes.append(
            f"column {col!r} left out of the features: {why}; a model cannot learn from it "
            f"(if it keys the rows, name it source.id_column in {paths.spec.name})"
        )
    for col, kinds in left_out.items():
        report.notes.append(f"column {col!r} left out of the features: it looks like PII ({kinds})")
        report.todo.append(
            f"column {col!r} holds PII ({kinds}): the PII gate blocks every run while the "
            f"source holds it; drop it from {paths.data.name}, or declare it under pii_allowed "
            f"in {paths.spec.name} if it must stay"
        )
    for col in protected:
        if col in pii:
            report.todo.append(
                f"protected attribute {col!r} looks like PII ({pii[col]}): declare it"
            )
    if protected:
        report.notes.append(
            f"protected attributes {protected} travel with the data for the fairness and "
            "slice gates but are not model features; list them under features if the model "
            "may use them"
        )
    if not features:
        raise DataError(
            f"{paths.data}: no feature columns left after the target, protected, PII and "
            "identifier columns"
        )
    return features


def _tier(args: Any) -> tuple[dict[str, Any], str, bool, str]:
    profile = PROFILES[args.profile]
    tier, auto, comment = profile["tier"], profile["auto_promote"], profile["tier_comment"]
    if args.auto_promote:
        tier, auto = "low", True
        comment = (
            "tier low with auto_promote (init --auto-promote): a model that passes every gate "
            "becomes champion at once, with no person in the loop."
        )
    return profile, tier, auto, comment


def _policy_text(
    args: Any, paths: _Paths, df: Any, numeric: list[str], protected: list[str]
) -> tuple[str, str]:
    """The register: the template's header, then each catalogue control's default risk
    that applies to the data. Returns it and the tier comment."""
    import yaml

    from risk_assets.catalogue import InitContext, default_register
    from risk_assets.profiling import perturbation_budgets

    profile, tier, auto, comment = _tier(args)
    context = InitContext(
        profile=profile,
        majority_share=float(df[args.target].value_counts(normalize=True).max()),
        budgets=perturbation_budgets(df, numeric),
        protected=protected,
        serving=paths.serving is not None,
    )
    template = (Path(__file__).parent / "templates" / "policy.yaml").read_text(encoding="utf-8")
    header = template.format(
        name=paths.name,
        profile=args.profile,
        tier=tier,
        tier_comment=comment,
        auto_promote=str(auto).lower(),
    )
    risks = yaml.safe_dump(default_register(context), sort_keys=False, width=88)
    return header + "".join("  " + line + "\n" for line in risks.splitlines()), comment


def _plain(value: Any) -> Any:
    """A label as YAML writes it: numpy scalars as Python numbers, whole floats as ints."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _spec_doc(
    args: Any, paths: _Paths, labels: tuple[Any, Any], features: list, protected: list, bands: dict
) -> dict[str, Any]:
    favourable, positive = labels
    out = paths.out
    return {
        "name": paths.name,
        "description": f"Predicts {args.target} from {paths.data.name} (written by risk-assets "
        "init).",
        "source": {"path": os.path.relpath(paths.data, out), "format": paths.fmt},
        **(
            {"serving_source": {"path": os.path.relpath(paths.serving, out)}}
            if paths.serving is not None
            else {}
        ),
        "target": args.target,
        "positive_label": _plain(positive),
        "favourable_label": _plain(favourable),
        "features": features,
        "protected_attributes": protected,
        **({"protected_bands": bands} if bands else {}),
        "estimator": {
            "class": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 1000},
        },
        "split": {"test_size": 0.25, "seed": 42, "stratify": True},
        "expectations": os.path.relpath(paths.suite, out),
        "policy": os.path.relpath(paths.policy, out),
        "registered_model": paths.name,
    }


def _write(paths: _Paths, spec: dict, suite: dict, policy_text: str) -> None:
    import yaml

    paths.suite.parent.mkdir(parents=True, exist_ok=True)
    paths.policy.parent.mkdir(parents=True, exist_ok=True)
    paths.suite.write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    paths.policy.write_text(policy_text, encoding="utf-8")
    paths.spec.write_text(
        "# Pipeline spec written by `risk-assets init`; paths are relative to this file.\n"
        + yaml.safe_dump(spec, sort_keys=False),
        encoding="utf-8",
    )


def onboard(args: Any) -> str:
    """Write the spec, suite and register for ``args`` (the ``init`` options); return what
    init did and decided, for the user to read before the first run.

    Raises:
        DataError, SpecError: naming the file, option or column at fault.
    """
    import pandas as pd

    from risk_assets.controls._expectations import profile_suite
    from risk_assets.controls._result import MAX_MAGNITUDE
    from risk_assets.estimator import categorical_columns
    from risk_assets.pipeline import load_pipeline
    from risk_assets.profiling import extreme_values, sentinel_values

    paths = _paths(args)
    raw, protected = _read(args, paths)
    report = _Report()
    labels = _labels(args, raw[args.target], paths.spec.name, report)
    features = _features(raw, args.target, protected, paths, report)
    df = raw[[args.target, *features, *protected]]
    # as the pipeline will see them: text and booleans are categories
    categorical = categorical_columns(df, features, None)
    numeric = [c for c in features if c not in categorical]
    numeric_protected = [c for c in protected if c not in categorical_columns(df, protected, None)]
    extreme = extreme_values(df, [*numeric, *numeric_protected])
    for col, what in extreme.items():
        report.todo.append(
            f"column {col!r} holds {what}: corrupt values, not measurements; the "
            "expectation suite's range for it leaves them out, so its gate (DQ-001) blocks "
            f"every run until they are fixed or emptied in {paths.data.name}"
        )
    for sentinel in sentinel_values(df, numeric):
        if sentinel.column in extreme and not abs(sentinel.value) <= MAX_MAGNITUDE:
            continue  # reported above
        report.todo.append(
            sentinel.describe() + " If so, leave those cells empty in the source; budgets "
            "below come from robust spreads and are not inflated by it"
        )
    suite = profile_suite(
        df,
        name=paths.name,
        target=args.target,
        categorical=[*categorical, *categorical_columns(df, protected, None)],
    )
    policy_text, tier_comment = _policy_text(args, paths, df, numeric, protected)
    bands = {
        c: [float(df[c].median())]
        for c in protected
        if pd.api.types.is_numeric_dtype(df[c].dtype) and df[c].nunique() > 10
    }
    for col, edges in bands.items():
        report.notes.append(
            f"numeric protected attribute {col!r} banded at its median {edges[0]:g}"
        )
    if paths.serving is None:
        report.notes.append(
            "no --serving file: the training/serving skew gate (SKEW-001) is left out; rerun "
            "init with --serving DATA (recent scoring inputs) to add it"
        )
    _write(paths, _spec_doc(args, paths, labels, features, protected, bands), suite, policy_text)
    load_pipeline(paths.spec)  # what init writes must load
    if paths.defs is not None:
        _write_component(paths)
    return _summary(paths, suite, tier_comment, report)


def _write_component(paths: _Paths) -> None:
    """``DEFS/NAME/defs.yaml``: the pipeline as a Dagster component pointing at its spec,
    loaded once to prove it builds."""
    from risk_assets.dagster._component import RiskAssetsPipeline

    paths.defs.parent.mkdir(parents=True, exist_ok=True)
    spec = os.path.relpath(paths.spec, paths.defs.parent)
    paths.defs.write_text(
        f"# The {paths.name} pipeline as a Dagster component, written by `risk-assets init`.\n"
        f"type: {RiskAssetsPipeline.__module__.rsplit('.', 1)[0]}.RiskAssetsPipeline\n"
        f"attributes:\n  spec: {spec}\n",
        encoding="utf-8",
    )
    RiskAssetsPipeline(spec=spec).definitions_in(paths.defs.parent)


def _summary(paths: _Paths, suite: dict, tier_comment: str, report: _Report) -> str:
    lines = [
        f"wrote {paths.spec}",
        f"wrote {paths.suite} ({len(suite['expectations'])} expectations)",
        f"wrote {paths.policy}",
        f"  {tier_comment}",
        "",
        "init decided:",
        *(f"  - {n}" for n in report.notes),
    ]
    if report.todo:
        lines += ["", "decide before the first run:", *(f"  - {t}" for t in report.todo)]
    if paths.defs is not None:
        lines.insert(3, f"wrote {paths.defs} (Dagster component)")
    lines += ["", f"run it:  risk-assets run {os.path.relpath(paths.spec)}"]
    return "\n".join(lines)
