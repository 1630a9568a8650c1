"""Variants of a data set: clean ones that must register, faults that must be blocked.

A variant takes the base data (and the data set's description) and returns the data to
run, or ``None`` when it does not apply to that data set (no protected attribute, no
categorical feature). A fault that is a change of the spec, not of the data, edits the
spec instead (``edit_spec``). ``gates`` lists the checks of the right kind for a fault:
a block by any of them counts as caught by the right gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks.fault_corpus.datasets import DataSet


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "clean" or "fault"
    what: str
    apply: Callable[[pd.DataFrame, DataSet], pd.DataFrame | None]
    gates: tuple[str, ...] = ()  # right gates; "fair_across_{attr}" is filled in per data set
    edit_spec: Callable[[dict], dict] | None = None


# ---------------------------------------------------------------------------- helpers


def _features(df: pd.DataFrame, ds: DataSet) -> list[str]:
    return [c for c in df.columns if c != ds.target]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


def numeric_features(df: pd.DataFrame, ds: DataSet) -> list[str]:
    """Numeric, non-protected features with at least 20 distinct values, most distinct
    first (ties by column order): the ones a shift or a scale visibly moves."""
    cols = [
        c
        for c in _features(df, ds)
        if c not in ds.protected and _is_numeric(df[c]) and df[c].nunique() >= 20
    ]
    order = {c: i for i, c in enumerate(df.columns)}
    return sorted(cols, key=lambda c: (-df[c].nunique(), order[c]))


def categorical_features(df: pd.DataFrame, ds: DataSet) -> list[str]:
    """Non-protected categorical (string) features other than free text."""
    return [
        c
        for c in _features(df, ds)
        if c not in ds.protected
        and c != ds.text_column
        and not _is_numeric(df[c])
        and not pd.api.types.is_bool_dtype(df[c].dtype)
        and df[c].nunique() >= 2
    ]


def _like(values: pd.Series | np.ndarray, original: pd.Series) -> pd.Series:
    """Values cast back to the original column's kind (integers stay integers)."""
    s = pd.Series(values, index=original.index)
    if pd.api.types.is_integer_dtype(original.dtype):
        s = s.round().astype(original.dtype)
    return s


def _rows(df: pd.DataFrame, share: float, seed: int, mask: pd.Series | None = None) -> pd.Index:
    pool = df.index if mask is None else df.index[mask.to_numpy()]
    rng = np.random.default_rng(seed)
    k = int(round(share * len(pool)))
    return pd.Index(rng.choice(pool.to_numpy(), size=k, replace=False))


def _other_label(df: pd.DataFrame, ds: DataSet) -> dict:
    labels = sorted(df[ds.target].dropna().unique().tolist(), key=str)
    if len(labels) != 2:
        raise ValueError(f"{ds.name}: expected a binary target, found {labels}")
    return {labels[0]: labels[1], labels[1]: labels[0]}


def _flip(values: pd.Series, df: pd.DataFrame, ds: DataSet) -> pd.Series:
    return values.map(_other_label(df, ds)).astype(df[ds.target].dtype)


# ---------------------------------------------------------------------------- clean


def subsample_90(df, ds):
    return df.sample(frac=0.9, random_state=101)


def shuffled(df, ds):
    return df.sample(frac=1.0, random_state=102).reset_index(drop=True)


def reordered_columns(df, ds):
    cols = list(df.columns)
    rng = np.random.default_rng(103)
    return df[[cols[i] for i in rng.permutation(len(cols))]]


def bootstrap(df, ds):
    return df.sample(n=len(df), replace=True, random_state=104).reset_index(drop=True)


def same_data(df, ds):
    return df


# ---------------------------------------------------------------------------- faults

_EMAIL_DOMAINS = ["example.com", "mail.example.org", "example.net"]


def _email(rng: np.random.Generator) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    local = "".join(rng.choice(list(letters), size=int(rng.integers(5, 10))))
    return f"{local}{int(rng.integers(1, 999))}@{rng.choice(_EMAIL_DOMAINS)}"


def _phone(rng: np.random.Generator) -> str:
    return f"({int(rng.integers(201, 989))}) 555-{int(rng.integers(100, 9999)):04d}"


def email_column(df, ds):
    """A column ``contact`` of e-mail addresses (its name does not say so; the values do)."""
    rng = np.random.default_rng(201)
    out = df.copy()
    out["contact"] = [_email(rng) for _ in range(len(df))]
    return out


_NOTES = [
    "documents complete",
    "follow-up requested by the branch",
    "second review done",
    "income checked against statements",
    "customer asked for a paper copy",
    "no further action",
    "file reopened after a query",
]


def pii_in_text(df, ds):
    """An e-mail address or a phone number inside 7 % of a free-text column; a data set
    without free text gets a ``notes`` column of short notes, 7 % of them with PII."""
    rng = np.random.default_rng(202)
    out = df.copy()
    col = ds.text_column
    if col is None:
        col = "notes"
        out[col] = rng.choice(np.array(_NOTES, dtype=object), size=len(df))
    has_text = out[col].notna()
    idx = _rows(out, 0.07, 203, has_text)
    for i in idx:
        pii = f"contact me at {_email(rng)}" if rng.random() < 0.5 else f"call {_phone(rng)}"
        out.at[i, col] = f"{out.at[i, col]}, {pii}"
    return out


def flip_labels_15(df, ds):
    out = df.copy()
    idx = _rows(out, 0.15, 301)
    out.loc[idx, ds.target] = _flip(out.loc[idx, ds.target], df, ds)
    return out


def duplicates_opposite_10(df, ds):
    idx = _rows(df, 0.10, 302)
    dup = df.loc[idx].copy()
    dup[ds.target] = _flip(dup[ds.target], df, ds)
    return pd.concat([df, dup], ignore_index=True)


def outlier_rows_5(df, ds):
    """5 % new rows whose every column is drawn independently within its observed range
    (numbers uniform between min and max, categories and labels uniform over those seen):
    each value is plausible, the combination is not."""
    rng = np.random.default_rng(401)
    n = int(round(0.05 * len(df)))
    new = {}
    for c in df.columns:
        s = df[c].dropna()
        if _is_numeric(df[c]):
            v = rng.uniform(float(s.min()), float(s.max()), n)
            if pd.api.types.is_integer_dtype(df[c].dtype):
                v = np.round(v)
            new[c] = pd.Series(v).astype(df[c].dtype)
        else:
            seen = s.unique()
            new[c] = pd.Series(seen[rng.integers(0, len(seen), n)]).astype(df[c].dtype)
    return pd.concat([df, pd.DataFrame(new)[df.columns]], ignore_index=True)


def _shift(k: float):
    def shift(df, ds):
        out = df.copy()
        for c in numeric_features(df, ds)[:2]:
            out[c] = _like(out[c].astype(float) + k * float(df[c].std()), df[c])
        return out

    shift.__doc__ = f"The two most varied numeric features shifted by {k} standard deviations."
    return shift


def scale_1_5(df, ds):
    out = df.copy()
    c = numeric_features(df, ds)[0]
    out[c] = _like(out[c].astype(float) * 1.5, df[c])
    return out


def category_move_20(df, ds):
    """20 % of the rows of a categorical feature's most frequent category moved to its
    second most frequent category."""
    cats = categorical_features(df, ds)
    if not cats:
        return None
    c = max(cats, key=lambda c: (int(df[c].value_counts().iloc[0]), -list(df.columns).index(c)))
    top, second = df[c].value_counts().index[:2]
    out = df.copy()
    out.loc[_rows(df, 0.20, 501, df[c] == top), c] = second
    return out


def drop_column(df, ds):
    return df.drop(columns=[numeric_features(df, ds)[0]])


def missing_30(df, ds):
    """30 % of a numeric feature's values missing (integers stay integers: empty cells)."""
    cols = numeric_features(df, ds)
    c = cols[2] if len(cols) > 2 else cols[0]
    out = df.copy()
    if pd.api.types.is_integer_dtype(df[c].dtype):
        out[c] = out[c].astype("Int64")
    out.loc[_rows(df, 0.30, 601), c] = np.nan if out[c].dtype.kind == "f" else pd.NA
    return out


def out_of_range_5(df, ds):
    """5 % of a numeric feature's values set beyond its observed maximum by one span."""
    c = numeric_features(df, ds)[0]
    out = df.copy()
    lo, hi = float(df[c].min()), float(df[c].max())
    idx = _rows(df, 0.05, 701)
    vals = out[c].astype(float)
    vals.loc[idx] = hi + (hi - lo) * np.random.default_rng(702).uniform(0.9, 1.1, len(idx))
    out[c] = _like(vals, df[c])
    return out


def fairness_group(df: pd.DataFrame, ds: DataSet) -> tuple[str, pd.Series] | None:
    """The protected attribute and the group the fairness fault disadvantages: the least
    frequent category of the first categorical attribute, else rows below the median of
    a numeric one (the band ``init`` writes)."""
    for attr in ds.protected:
        if not _is_numeric(df[attr]):
            return attr, df[attr] == df[attr].value_counts().index[-1]
    for attr in ds.protected:
        return attr, df[attr] < float(df[attr].median())
    return None


def unfavourable_labels_group(df, ds):
    """60 % of one protected group's rows get the unfavourable label."""
    found = fairness_group(df, ds)
    if found is None:
        return None
    _, mask = fairness_group(df, ds)
    other = _other_label(df, ds)[ds.favourable]
    out = df.copy()
    out.loc[_rows(df, 0.60, 801, mask), ds.target] = other
    return out


def memorising_tree_spec(spec: dict) -> dict:
    return dict(
        spec,
        estimator={
            "class": "sklearn.tree.DecisionTreeClassifier",
            "params": {"min_samples_leaf": 1, "random_state": 0},
        },
    )


CLEAN: list[Variant] = [
    Variant("subsample_90", "clean", "another 90 % sub-sample of the rows", subsample_90),
    Variant("shuffled_rows", "clean", "the rows in another order", shuffled),
    Variant("reordered_columns", "clean", "the columns in another order", reordered_columns),
    Variant(
        "bootstrap", "clean", "a bootstrap re-sample (as many rows, with replacement)", bootstrap
    ),
    Variant("same_data", "clean", "a second run on the same data", same_data),
]

FAULTS: list[Variant] = [
    Variant(
        "email_column",
        "fault",
        "a column `contact` of e-mail addresses",
        email_column,
        ("pii_free",),
    ),
    Variant(
        "pii_in_text",
        "fault",
        "an e-mail or phone number in 7 % of a free-text column "
        "(a `notes` column where there is none)",
        pii_in_text,
        ("pii_free",),
    ),
    Variant(
        "flip_labels_15", "fault", "15 % of labels flipped", flip_labels_15, ("labels_consistent",)
    ),
    Variant(
        "duplicates_opposite_10",
        "fault",
        "10 % of rows duplicated with the opposite label",
        duplicates_opposite_10,
        ("labels_consistent",),
    ),
    Variant(
        "outlier_rows_5",
        "fault",
        "5 % synthetic rows, each feature drawn independently within its observed range",
        outlier_rows_5,
        ("no_outliers_against_reference",),
    ),
    Variant(
        "shift_half_sd",
        "fault",
        "the two most varied numeric features shifted by 0.5 sd",
        _shift(0.5),
        ("no_feature_drift",),
    ),
    Variant(
        "shift_one_sd",
        "fault",
        "the two most varied numeric features shifted by 1 sd",
        _shift(1.0),
        ("no_feature_drift",),
    ),
    Variant(
        "scale_1_5",
        "fault",
        "the most varied numeric feature multiplied by 1.5",
        scale_1_5,
        ("no_feature_drift",),
    ),
    Variant(
        "category_move_20",
        "fault",
        "20 % of a category's rows moved to another category",
        category_move_20,
        ("no_feature_drift",),
    ),
    Variant(
        "drop_column",
        "fault",
        "the most varied numeric feature dropped",
        drop_column,
        ("meets_expectations",),
    ),
    Variant(
        "missing_30",
        "fault",
        "30 % of a numeric feature's values missing",
        missing_30,
        ("meets_expectations", "no_feature_drift"),
    ),
    Variant(
        "out_of_range_5",
        "fault",
        "5 % of a numeric feature's values one span above its maximum",
        out_of_range_5,
        ("meets_expectations", "no_training_serving_skew"),
    ),
    Variant(
        "unfavourable_labels_group",
        "fault",
        "60 % of one protected group's rows given the unfavourable label",
        unfavourable_labels_group,
        # the fairness gate (its training-label ratio), or the label-noise gate: labels
        # flipped for one group are poisoned labels too, and that data gate stops the run
        # before a model (and so the fairness gate) exists
        ("fair_across_{attr}", "labels_consistent"),
    ),
    Variant(
        "memorising_tree",
        "fault",
        "the spec's estimator a DecisionTreeClassifier without depth limit, "
        "min_samples_leaf 1 (clean data)",
        same_data,
        ("no_membership_leakage", "robust_to_perturbation", "robust_to_evasion"),
        edit_spec=memorising_tree_spec,
    ),
]


VARIANTS: dict[str, Variant] = {v.name: v for v in CLEAN + FAULTS}

#: ``--smoke``: one clean variant and three faults whose right gates are data gates, so
#: the three fault runs stop before the model is trained.
SMOKE_DATASET = "german_credit"
SMOKE_VARIANTS = ("same_data", "email_column", "drop_column", "shift_one_sd")


def right_gates(variant: Variant, df: pd.DataFrame, ds: DataSet) -> tuple[str, ...]:
    if any("{attr}" in g for g in variant.gates):
        found = fairness_group(df, ds)
        return tuple(g.format(attr=found[0]) for g in variant.gates) if found else ()
    return variant.gates
