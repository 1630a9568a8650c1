"""Build the scikit-learn Pipeline a spec asks for: preprocessing plus the estimator."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from risk_assets.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = [
    "MAX_CATEGORIES",
    "MAX_DENSE_BYTES",
    "PlainColumns",
    "accepts_sparse",
    "build_pipeline",
    "categorical_columns",
    "identifier_reason",
    "refuse_identifiers",
    "resolve_estimator_class",
]

#: Most distinct values a categorical feature may have: beyond, it is a key or free text,
#: not a category (one-hot encoding it gives a column per value).
MAX_CATEGORIES = 2000
#: A categorical feature whose distinct values exceed this share of its non-null rows (and
#: number more than ``_ID_MIN_DISTINCT``) identifies rows rather than grouping them.
ID_SHARE = 0.5
_ID_MIN_DISTINCT = 50
#: Largest dense one-hot matrix (rows x categories x 8 bytes) built for an estimator that
#: refuses sparse input.
MAX_DENSE_BYTES = 1 << 30
#: The preprocessed matrix goes sparse when fewer than this share of its cells are
#: non-zero (a wide one-hot) and the estimator accepts sparse input. Ordinary tabular data
#: (a handful of categories per column, about a quarter of the cells non-zero) stays dense,
#: so its models and figures are what they always were.
SPARSE_DENSITY = 0.05


def resolve_estimator_class(class_path: str, *, where: str = "estimator.class") -> type:
    """Import a classifier class from its dotted path; raise SpecError naming the key."""
    module_name, _, cls_name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"{where}: cannot import module {module_name!r}: {exc}") from exc
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise SpecError(f"{where}: {module_name!r} has no class {cls_name!r}")
    if not (hasattr(cls, "fit") and hasattr(cls, "predict")):
        raise SpecError(f"{where}: {class_path} is not a scikit-learn style estimator")
    return cls


def identifier_reason(values: pd.Series) -> str | None:
    """Why a column cannot be a category (too many distinct values, or about one per row),
    or ``None`` when it can."""
    present = values.dropna()
    distinct = int(present.nunique())
    rows = len(present)
    if distinct > _ID_MIN_DISTINCT and distinct > ID_SHARE * rows:
        return (
            f"{distinct:,} distinct values in {rows:,} rows (more than {ID_SHARE:.0%} of "
            "them): it identifies rows, it does not group them"
        )
    if distinct > MAX_CATEGORIES:
        return (
            f"{distinct:,} distinct values in {rows:,} rows (more than {MAX_CATEGORIES:,}): "
            "a key or free text, not a category"
        )
    return None


def refuse_identifiers(df: pd.DataFrame, categorical: list[str]) -> None:
    """Refuse categorical features that are identifiers or too many categories.

    Raises:
        DataError: naming the column, its distinct count and the spec key to change.
    """
    from risk_assets.errors import DataError

    for col in categorical:
        reason = identifier_reason(df[col])
        if reason is not None:
            raise DataError(
                f"categorical feature {col!r} has {reason}; one-hot encoding would give a "
                f"column per value. Leave {col!r} out of `features` in the spec (or name it "
                f"`source.id_column` if it identifies rows; a numeric code listed under "
                f"`categorical_features` can be left out of that list instead)"
            )


def categorical_columns(
    df: pd.DataFrame, features: list[str], declared: list[str] | None
) -> list[str]:
    """Features treated as categories: the declared ones plus every non-numeric column.

    How many values they have is judged when the Pipeline is fitted
    (:func:`refuse_identifiers`), after the data gates: a column of e-mail addresses is
    the PII gate's finding, with its evidence, before it is a training error.
    """
    import pandas as pd

    declared_set = set(declared or [])
    return [
        c
        for c in features
        if c in declared_set
        or not pd.api.types.is_numeric_dtype(df[c].dtype)
        or pd.api.types.is_bool_dtype(df[c].dtype)
    ]


class PlainColumns:
    """pandas' nullable and extension dtypes as values scikit-learn's imputers accept.

    Numbers (``Int64``, ``Float64``, ``boolean``, numpy numbers) become float64 with NaN for
    missing; categories (text, ``string``, ``category``, booleans, datetimes, integer codes)
    become text with NaN for missing, whole numbers written without a decimal point so
    that 2 and 2.0 (an integer column with a gap) are one category. A Parquet file with
    ``<NA>`` in a nullable column then trains and scores like the same CSV.

    Fitted on categories, it refuses what one-hot encoding cannot hold: an identifier or a
    column of more than :data:`MAX_CATEGORIES` values, and (with ``max_dense_bytes``, for an
    estimator that needs dense input) a one-hot matrix larger than that many bytes.
    """

    def __init__(self, kind: str = "numeric", max_dense_bytes: int | None = None) -> None:
        self.kind = kind
        self.max_dense_bytes = max_dense_bytes

    def fit(self, X: Any, y: Any = None) -> PlainColumns:
        if self.kind != "numeric":
            self._check_categories(X)
        return self

    def _check_categories(self, X: Any) -> None:
        import pandas as pd

        from risk_assets.errors import DataError

        frame = pd.DataFrame(X)
        refuse_identifiers(frame, list(frame.columns))
        # models saved before this attribute existed load without it
        limit = getattr(self, "max_dense_bytes", None)
        if limit is None:
            return
        width = sum(int(frame[c].nunique()) for c in frame.columns)
        needed = len(frame) * width * 8
        if needed > limit:
            raise DataError(
                f"categorical features {list(frame.columns)} one-hot encode to {width:,} "
                f"columns over {len(frame):,} rows ({_size(needed)} dense), more than "
                f"{_size(limit)}, and the estimator needs dense input: leave "
                "some of them out of `features` in the spec, or choose an `estimator.class` "
                "that accepts sparse input (e.g. sklearn.linear_model.LogisticRegression)"
            )

    def transform(self, X: Any) -> Any:
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame(X)
        out = {}
        for col in frame.columns:
            s = frame[col]
            if self.kind == "numeric":
                out[col] = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
            else:
                from risk_assets.controls._result import group_labels

                text = group_labels(s)
                text[s.isna().to_numpy()] = np.nan
                out[col] = text
        return pd.DataFrame(out, index=frame.index, columns=frame.columns)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        import numpy as np

        return np.asarray(input_features, dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"kind": self.kind, "max_dense_bytes": getattr(self, "max_dense_bytes", None)}

    def set_params(self, **params: Any) -> PlainColumns:
        for key, value in params.items():
            setattr(self, key, value)
        return self


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def accepts_sparse(estimator: Any) -> bool:
    """Whether an estimator says (through scikit-learn's tags) that it fits sparse input;
    ``False`` when it does not say."""
    try:
        return bool(estimator.__sklearn_tags__().input_tags.sparse)
    except Exception:  # not a scikit-learn estimator, or one without tags: assume dense
        return False


def build_pipeline(
    *,
    class_path: str,
    params: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
) -> Pipeline:
    """An unfitted Pipeline: impute + scale numbers, impute + one-hot categories, then the model.

    The one-hot matrix is sparse when it is wide (fewer than :data:`SPARSE_DENSITY` of the
    cells non-zero) and the estimator accepts sparse input; otherwise it is dense, and
    fitting refuses categories that would take more than :data:`MAX_DENSE_BYTES`. Fitting
    refuses identifier-like categorical features either way (:class:`PlainColumns`).

    Raises:
        SpecError: the class cannot be imported or rejects the parameters.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cls = resolve_estimator_class(class_path)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise SpecError(f"estimator.params: {class_path} rejects the parameters: {exc}") from exc
    sparse = accepts_sparse(estimator)
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("plain", PlainColumns("numeric")),
                        ("impute", SimpleImputer(strategy="median")),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "plain",
                            PlainColumns(
                                "categorical", max_dense_bytes=None if sparse else MAX_DENSE_BYTES
                            ),
                        ),
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    # dense for estimators that refuse sparse input (e.g. HistGradientBoostingClassifier)
    # and for ordinary narrow one-hot features; sparse only where a dense matrix of one
    # column per category would be mostly zeros
    threshold = SPARSE_DENSITY if sparse else 0.0
    return Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(transformers, remainder="drop", sparse_threshold=threshold),
            ),
            ("model", estimator),
        ]
    )
