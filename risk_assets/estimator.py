"""Build the scikit-learn Pipeline a spec asks for: preprocessing plus the estimator."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from risk_assets.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = ["build_pipeline", "categorical_columns", "resolve_estimator_class"]


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
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
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
