"""Build the scikit-learn Pipeline a spec asks for: preprocessing plus the estimator."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from risk_assets.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = ["PlainColumns", "build_pipeline", "categorical_columns", "resolve_estimator_class"]


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


def categorical_columns(
    df: pd.DataFrame, features: list[str], declared: list[str] | None
) -> list[str]:
    """Features treated as categories: the declared ones plus every non-numeric column."""
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
    """

    def __init__(self, kind: str = "numeric") -> None:
        self.kind = kind

    def fit(self, X: Any, y: Any = None) -> PlainColumns:
        return self

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
                from risk_assets.controls._result import as_groups

                text = as_groups(s).to_numpy(dtype=object)
                text[s.isna().to_numpy()] = np.nan
                out[col] = text
        return pd.DataFrame(out, index=frame.index, columns=frame.columns)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> Any:
        import numpy as np

        return np.asarray(input_features, dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"kind": self.kind}

    def set_params(self, **params: Any) -> PlainColumns:
        for key, value in params.items():
            setattr(self, key, value)
        return self


def build_pipeline(
    *,
    class_path: str,
    params: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
) -> Pipeline:
    """An unfitted Pipeline: impute + scale numbers, impute + one-hot categories, then the model.

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
                        ("plain", PlainColumns("categorical")),
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline(
        [
            # dense output: several estimators (e.g. HistGradientBoostingClassifier) refuse
            # sparse input, and one-hot tabular features are narrow enough to hold densely
            ("preprocess", ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)),
            ("model", estimator),
        ]
    )
