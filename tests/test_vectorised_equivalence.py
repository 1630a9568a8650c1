"""The vectorised figures give what the row-by-row code they replaced gave.

Group labels (what every categorical column becomes in the estimator and in the gates'
groups), the mixed-types scan of validation, and the content keys of the champion gate
were each a Python call per row; they are now computed once per distinct value or in
NumPy. A registered model's predictions depend on the first, so each is checked against
the row-by-row reference, kept here, on values of every kind a column can hold, under
pandas 3 and (in the alibi stage of scripts/test) pandas 2.
"""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from risk_assets.controls._champion import _seen_in_training, row_keys
from risk_assets.controls._result import as_groups, group_counts, group_labels
from risk_assets.data import MOSTLY_NUMERIC, numbers_mixed_with_text
from risk_assets.estimator import PlainColumns

PROPERTY = settings(max_examples=60, deadline=None, database=None)

#: also run under pandas 2 (the alibi extra resolves it), where text columns are objects
pytestmark = pytest.mark.alibi


def reference_as_groups(values):
    s = pd.Series(values)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        whole = s.dropna()
        # (beyond 2**53 the cast below warned and overflowed; both now keep the float)
        if len(whole) and (whole == whole.round()).all() and (whole.abs() < 2**53).all():
            s = s.astype("Int64")
    return s.astype(object).where(s.notna(), "missing").map(str)


def reference_mixed(df, columns):
    found = {}
    for col in columns:
        series = df[col]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        if not (
            pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)
        ):
            continue
        present = series.dropna()
        if present.empty:
            continue
        text = present.astype(str).str.strip()
        is_number = pd.to_numeric(text, errors="coerce").notna().to_numpy()
        if is_number.mean() < MOSTLY_NUMERIC:
            continue
        others = pd.unique(text[~is_number])
        if len(others) >= 2 or any(str(v).lower() in ("true", "false") for v in others):
            found[col] = [str(v) for v in sorted(others, key=str)[:5]]
    return found


def reference_row_keys(df, columns):
    # (re-indexes to 0..n-1: wrong on any other index, see the last test)
    parts = {}
    for col in columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s.dtype):
            parts[col] = s.astype("float64")
        elif pd.api.types.is_numeric_dtype(s.dtype):
            parts[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            parts[col] = s.astype(object).where(s.notna(), "\x00missing").map(str)
    frame = pd.DataFrame(parts, index=range(len(df)))
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


#: Columns of every kind a source or a snapshot gives: text (Python and Arrow), numbers
#: whole and not, nullable integers, booleans, Python objects of mixed types (True, 1 and
#: 1.0 are equal in Python, and must stay three groups), bytes, decimals, dates,
#: datetimes and categories, each with gaps.
COLUMNS = [
    pd.Series(["a", None, "b", "a"]),
    pd.Series(["a", np.nan, "b", " a "], dtype="str"),
    pd.Series([pd.NA, "a", "a"], dtype="string"),
    pd.Series([1, 2, 2]),
    pd.Series([1.0, 2.0, np.nan]),
    pd.Series([1.5, 2.0, np.nan, -0.0, 1e16, np.inf]),
    pd.Series([np.float32(0.5), np.float32(0.1)]),
    pd.Series([1, pd.NA, 3], dtype="Int64"),
    pd.Series([True, False, True]),
    pd.Series([True, None, False], dtype="boolean"),
    pd.Series([True, 1, "1", 1.0, None, np.nan, "True"]),
    pd.Series([b"ab", "ab", None]),
    pd.Series([decimal.Decimal("1.10"), 2, "x"]),
    pd.Series(pd.to_datetime(["2020-01-01 00:00", None, "2020-01-01 10:00"])),
    pd.Series([datetime.date(2020, 1, 2), "x", None]),
    pd.Series(pd.Categorical(["x", "y", None, "x"])),
    pd.Series([], dtype=object),
    pd.Series([], dtype="float64"),
]


@pytest.mark.parametrize(
    "column", COLUMNS, ids=lambda s: str(s.dtype) + ":" + repr(s.tolist())[:40]
)
def test_group_labels_are_the_row_by_row_labels(column: pd.Series) -> None:
    expected = reference_as_groups(column)
    got = as_groups(column)
    assert got.tolist() == expected.tolist()
    assert got.dtype == expected.dtype
    assert got.index.equals(expected.index)
    assert list(group_labels(column)) == expected.tolist()


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 5),
            st.floats(allow_nan=True, allow_infinity=True, width=64),
            st.text(alphabet="ab1. -", max_size=4),
        ),
        max_size=30,
    )
)
def test_group_labels_on_any_mixture(values: list) -> None:
    for column in (pd.Series(values, dtype=object), pd.Series(values)):
        assert as_groups(column).tolist() == reference_as_groups(column).tolist()


@pytest.mark.parametrize(
    "column", COLUMNS, ids=lambda s: str(s.dtype) + ":" + repr(s.tolist())[:40]
)
def test_group_counts_are_the_counts_of_the_row_by_row_labels(column: pd.Series) -> None:
    expected = reference_as_groups(column).value_counts()
    got = group_counts(column)
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()


@PROPERTY
@given(
    st.lists(
        st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.5, 2.0, np.nan])),
        max_size=30,
    ),
    st.sampled_from(["float64", "Int64", "category"]),
)
def test_group_counts_on_any_column(values: list, dtype: str) -> None:
    if dtype == "Int64":
        values = [v if v is None or float(v).is_integer() else None for v in values]
    column = pd.Series([np.nan if v is None else v for v in values], dtype="float64").astype(dtype)
    expected = reference_as_groups(column).value_counts()
    assert group_counts(column).sort_index().to_dict() == expected.sort_index().to_dict()


@pytest.mark.parametrize(
    "values",
    [["female", "male", None], np.array([1.0, 2.5]), pd.Index(["a", "b"], name="g"), (3, 3)],
    ids=["list", "array", "index", "tuple"],
)
def test_group_labels_of_plain_sequences(values) -> None:
    """Controls pass lists and arrays too (a training group column given as a list)."""
    expected = reference_as_groups(values)
    got = as_groups(values)
    assert got.tolist() == expected.tolist()
    assert got.index.equals(expected.index) and got.name == expected.name


def test_the_estimator_encodes_categories_as_before() -> None:
    """A model registered before the change predicts the same: the encoder's input is the
    same text, with missing values as NaN for the imputer."""
    frame = pd.DataFrame(
        {
            c: pd.Series(s.tolist()[:3] + [None] * (3 - len(s.tolist()[:3])))
            for c, s in zip("abcdefghijklmnop", COLUMNS[:16], strict=True)
        }
    )
    out = PlainColumns("categorical").fit(frame).transform(frame)
    for col in frame.columns:
        expected = reference_as_groups(frame[col]).to_numpy(dtype=object)
        expected[frame[col].isna().to_numpy()] = np.nan
        got = out[col].to_numpy(dtype=object)
        assert [x if isinstance(x, str) else "NaN" for x in got] == [
            x if isinstance(x, str) else "NaN" for x in expected
        ]


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 3),
            st.sampled_from(["1", " 2 ", "x", "unknown", "True", "n/a", "3.5"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_mixed_types_scan_finds_what_the_row_by_row_scan_found(values: list) -> None:
    frame = pd.DataFrame({"obj": pd.Series(values, dtype=object)})
    frame["text"] = frame["obj"].map(lambda v: None if v is None else str(v)).astype("str")
    assert numbers_mixed_with_text(frame, ["obj", "text"]) == reference_mixed(
        frame, ["obj", "text"]
    )


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.one_of(st.none(), st.integers(0, 2)),
            st.sampled_from([1.5, 2.0, np.nan]),
            st.sampled_from([True, "1", 1, None]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_content_keys_match_rows_as_the_row_by_row_keys_did(rows: list) -> None:
    """The keys may differ in value; which rows share a key may not."""
    frame = pd.DataFrame(rows, columns=["t", "i", "f", "o"])
    frame["t"] = frame["t"].astype("str")
    cols = list(frame.columns)
    new, old = row_keys(frame, cols), reference_row_keys(frame, cols)
    same_new = new[:, None] == new[None, :]
    same_old = old[:, None] == old[None, :]
    assert (same_new == same_old).all()


def test_content_keys_agree_across_dtypes_of_one_value() -> None:
    """A row read back with another dtype (an integer column with a gap comes back as
    float; text as Arrow or Python strings) keeps its key."""
    a = pd.DataFrame({"n": [1, 2], "t": pd.Series(["x", "y"], dtype="str")})
    b = pd.DataFrame({"n": [1.0, 2.0], "t": pd.Series(["x", "y"], dtype=object)})
    assert (row_keys(a, ["n", "t"]) == row_keys(b, ["n", "t"])).all()
    c = pd.DataFrame({"n": [1.0, 3.0], "t": pd.Series(["x", "y"], dtype=object)})
    assert list(row_keys(a, ["n", "t"]) == row_keys(c, ["n", "t"])) == [True, False]


def test_content_keys_follow_the_rows_whatever_the_index(credit) -> None:
    """The row-by-row keys were built on a frame re-indexed 0..n-1, so on a split or a
    filtered frame (any other index) they paired a row with another row's text or with
    nothing: the champion gate then missed most rows its models had trained on, and scored
    them as unseen. A key is now the row's own, wherever the row sits."""
    cols = list(credit.columns)
    shuffled = credit.sample(frac=1.0, random_state=0)  # index: a permutation of 0..n-1
    subset = credit.iloc[::3]  # index: 0, 3, 6, ...
    for frame in (shuffled, subset):
        assert (row_keys(frame, cols) == row_keys(frame.reset_index(drop=True), cols)).all()
    # the old keys did not: most rows of a shuffled frame lost their text
    old = reference_row_keys(shuffled, cols)
    assert (old != reference_row_keys(shuffled.reset_index(drop=True), cols)).mean() > 0.5
    # every training row of a split is found in the frame it came from
    assert np.isin(row_keys(subset, cols), row_keys(shuffled, cols)).all()


def test_the_rows_seen_in_training_are_those_a_row_by_row_lookup_finds(credit) -> None:
    """The champion gate's membership test (a hash table of the training keys) marks a
    test row seen exactly when some training frame holds an equal row; a frame without
    every column cannot hold one."""
    cols = list(credit.columns)
    test = credit.sample(n=400, random_state=1)
    a, b = credit.iloc[:300], credit.iloc[250:600]
    other_columns = credit.drop(columns=[cols[0]])
    seen = _seen_in_training(test, [a, b, other_columns], cols)
    rows_of = [set(map(tuple, f[cols].astype(str).to_numpy())) for f in (a, b)]
    expected = [
        any(tuple(r) in rows for rows in rows_of) for r in test[cols].astype(str).to_numpy()
    ]
    assert seen.tolist() == expected
    assert 0 < sum(expected) < len(expected)


@pytest.mark.parametrize(
    "class_path, params",
    [
        ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30, "random_state": 0}),
    ],
)
def test_permutation_importance_is_scikit_learns(credit, class_path, params) -> None:
    """The explainability gate's permutation importance, its permuted copies stacked into
    few model calls, gives scikit-learn's figures exactly (same permutations, accuracy)."""
    from sklearn.inspection import permutation_importance as sklearn_importance

    from risk_assets.controls._explain import permutation_importance
    from risk_assets.data import split_frame
    from risk_assets.estimator import build_pipeline, categorical_columns

    features = [c for c in credit.columns if c != "risk"]
    categorical = categorical_columns(credit, features, None)
    split = split_frame(credit, target="risk", test_size=0.25, seed=42, stratify=True)
    model = build_pipeline(
        class_path=class_path,
        params=params,
        numeric=[c for c in features if c not in categorical],
        categorical=categorical,
    ).fit(split.train[features], split.train["risk"])
    X = split.test[features].iloc[::-1]  # an index that is not 0..n-1
    y = split.test["risk"].iloc[::-1]
    for seed in (0, 7):
        ours = permutation_importance(model, X, y, n_repeats=4, seed=seed)
        theirs = sklearn_importance(model, X, y, n_repeats=4, random_state=seed)
        assert np.array_equal(ours.importances, theirs.importances)
        assert np.array_equal(ours.importances_mean, theirs.importances_mean)
        assert np.array_equal(ours.importances_std, theirs.importances_std)


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "f1"])
def test_the_champion_bootstrap_bounds_are_those_of_one_resample_at_a_time(metric) -> None:
    """The paired bootstrap computes every resample at once (AUC from ranks over a
    matrix); its bounds are those of the loop over resamples it replaced."""
    from risk_assets.controls._champion import _bootstrap, _metric

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 700)
    scores = [np.clip(y * w + rng.random(700) * 0.8, 0, 1) for w in (0.3, 0.2)]
    candidate, champion = (((s > 0.5).astype(int), s) for s in scores)
    kw = {"positive_label": 1, "n_boot": 120, "sample_size": 500, "seed": 3, "confidence": 0.95}
    idx, bounds = _bootstrap(metric, y, candidate, champion, **kw)
    # the loop it replaced
    loop = np.random.default_rng(3)
    idx_all = loop.choice(700, size=500, replace=False)
    deltas = []
    for _ in range(120):
        i = loop.choice(idx_all, size=500, replace=True)
        a = _metric(metric, y[i], candidate[0][i], candidate[1][i], 1)
        b = _metric(metric, y[i], champion[0][i], champion[1][i], 1)
        deltas.append(a - b)
    assert np.array_equal(idx, idx_all)
    assert bounds == pytest.approx(
        (np.quantile(deltas, 0.05), np.quantile(deltas, 0.95)), rel=1e-12, abs=1e-12
    )


@pytest.mark.parametrize("size", [1, 333, 999, 1000, 5000])
def test_the_outlier_gates_reference_rows_are_the_head_of_the_seeded_shuffle(credit, size):
    """The outlier gate takes ``size`` reference rows with ``sample(n=size)`` instead of
    shuffling every row and keeping the head (seconds at a million rows): pandas draws
    both from the same seeded permutation, so they are the same rows in the same order."""
    for seed in (0, 7):
        head = credit.sample(frac=1.0, random_state=seed).iloc[:size]
        assert head.equals(credit.sample(n=min(len(credit), size), random_state=seed))


def ranked_auc_per_resample(y, draws, score, pos):
    """The AUC of each resample from average ranks over the resampled matrix, as the
    champion gate computed it before it counted weights."""
    from scipy.stats import rankdata

    positive = y[draws] == pos
    n1 = positive.sum(axis=1)
    n0 = positive.shape[1] - n1
    ranks = rankdata(score[draws], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * positive).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where((n1 == 0) | (n0 == 0), np.nan, auc)


@pytest.mark.parametrize("block_cells", [None, 1000])
@pytest.mark.parametrize("case", ["ties", "continuous", "missing score", "one class drawn"])
def test_the_champion_auc_per_resample_is_the_ranked_auc_exactly(
    case, block_cells, monkeypatch
) -> None:
    """Counting each resample's weights gives the figure of ranking it, bit for bit: ties
    (scores of a few distinct values), a missing score (no figure for a resample that drew
    it) and resamples that drew one class only (no figure); in one block of resamples or
    in many."""
    from risk_assets.controls import _champion
    from risk_assets.controls._champion import _metric_per_resample

    if block_cells is not None:
        monkeypatch.setattr(_champion, "_BLOCK_CELLS", block_cells)

    rng = np.random.default_rng(11)
    n = 12 if case == "one class drawn" else 600
    y = rng.integers(0, 2, n)
    rows = np.sort(rng.choice(n, size=n * 3 // 4, replace=False))
    scores = [np.clip(y * w + rng.random(n) * 0.8, 0, 1) for w in (0.3, 0.1)]
    if case == "ties":
        scores = [np.round(s, 1) for s in scores]
    if case == "missing score":
        scores[0][rows[[5, 40]]] = np.nan
    size = 3 if case == "one class drawn" else len(rows)
    draws = rng.choice(rows, size=(200, size), replace=True)
    models = [((s > 0.5).astype(int), s) for s in scores]
    got = _metric_per_resample("roc_auc", y, draws, *models, 1, rows)
    for ours, (_, score) in zip(got, models, strict=True):
        assert np.array_equal(ours, ranked_auc_per_resample(y, draws, score, 1), equal_nan=True)
        assert np.isfinite(ours).any()
    if case in ("missing score", "one class drawn"):
        assert np.isnan(got[0]).any()  # the case is exercised


@pytest.mark.parametrize(
    "kind", ["email", "payment_card", "iban", "phone", "person_name", "ip_address"]
)
def test_the_pii_scan_judges_each_distinct_value_as_it_judged_each_row(kind) -> None:
    """A column of repeated values is scanned once per distinct value: the same rows."""
    from risk_assets.controls._pii import _PATTERNS, _matches, _value_matches

    assert kind in _PATTERNS
    values = [
        "radio/TV", "jane.doe@example.org", "4111 1111 1111 1111", "order 1234567890123",
        "GB82 WEST 1234 5698 7654 32", "call +44 20 7946 0958", "Maria Garcia", "10.0.0.1",
        "Mary Land", "car", "", "1234 5678 9012 3456",
    ]  # fmt: skip
    text = pd.Series(values * 7 + ["radio/TV"] * 30, dtype="str")
    assert (_matches(text, kind) == _value_matches(text, kind)).all()
