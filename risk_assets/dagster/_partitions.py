"""Partitioned sources: the Dagster partitions of a spec, its training window, its batches."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg

from risk_assets.errors import DataError, SpecError

if TYPE_CHECKING:
    import pandas as pd

    from risk_assets.spec import LoadedSpec

__all__ = [
    "declared_columns",
    "partition_keys",
    "partitions_def",
    "read_partition",
    "window_mapping",
]


@contextmanager
def quiet_previews() -> Iterator[None]:
    """Partitioned asset checks and windows that start before the first partition are
    preview/beta features of Dagster; we rely on them knowingly, so their warnings are not
    shown to every user of a code location."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        yield


def partitions_def(loaded: LoadedSpec) -> dg.TimeWindowPartitionsDefinition:
    """Monthly (``YYYY-MM``) or daily (``YYYY-MM-DD``) partitions from ``source.partitions``;
    ``end`` is inclusive in the spec (Dagster's end date is exclusive)."""
    from datetime import timedelta

    from risk_assets.spec import parse_partition_key

    parts = loaded.spec.source.partitions
    end = None
    if parts.end is not None:
        last = parse_partition_key(parts.scheme, parts.end)
        if parts.scheme == "monthly":
            nxt = last.replace(year=last.year + last.month // 12, month=last.month % 12 + 1)
        else:
            nxt = last + timedelta(days=1)
        end = nxt.strftime(parts.key_format)
    cls = (
        dg.MonthlyPartitionsDefinition
        if parts.scheme == "monthly"
        else dg.DailyPartitionsDefinition
    )
    return cls(start_date=parts.start, end_date=end, fmt=parts.key_format)


def partition_keys(loaded: LoadedSpec) -> list[str]:
    return list(partitions_def(loaded).get_partition_keys())


def window_mapping(window: int) -> dg.TimeWindowPartitionMapping:
    """The last ``window`` partitions up to and including the downstream one; the window is
    shorter at the start of the partitions (recorded with the model)."""
    with quiet_previews():
        return dg.TimeWindowPartitionMapping(
            start_offset=-(window - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
        )


def check_partition(loaded: LoadedSpec, partition: str) -> None:
    """Raise SpecError unless ``partition`` is one of the spec's partitions."""
    keys = partition_keys(loaded)
    if partition not in keys:
        span = f"{keys[0]} .. {keys[-1]}" if keys else "none yet"
        raise SpecError(
            f"{loaded.path}: partition {partition!r} is not one of the spec's partitions "
            f"({span}; source.partitions)"
        )


def read_partition(
    loaded: LoadedSpec, partition: str, *, labelled: bool = True
) -> tuple[pd.DataFrame, dict[str, Any], str]:
    """One partition's batch; with ``labelled``, joined with its delayed labels (if the spec
    keeps them in files of their own).

    Returns:
        The frame, counts (rows, labelled, awaiting, ...) and a description of the files.

    Raises:
        DataError: naming the file that is missing or bad.
    """
    from risk_assets.data import join_labels, read_source

    spec = loaded.spec
    fmt = spec.source.format
    batch_path = loaded.batch_path(partition)
    if not batch_path.is_file():
        raise DataError(
            f"{batch_path}: no batch file for partition {partition} "
            f"(source.folder and source.pattern of {loaded.path})"
        )
    batch = read_source(batch_path, fmt)
    labels_path = loaded.labels_path(partition)
    if labels_path is None or not labelled:
        return batch, {"rows": len(batch)}, str(batch_path)
    if not labels_path.is_file():
        raise DataError(
            f"{labels_path}: the labels of partition {partition} have not arrived "
            f"(source.labels of {loaded.path}); its rows cannot be trained on yet"
        )
    labels = read_source(labels_path, fmt)
    df, counts = join_labels(
        batch,
        labels,
        id_column=spec.source.id_column,
        target=spec.target,
        batch_source=batch_path,
        labels_source=labels_path,
    )
    if df.empty:
        raise DataError(f"{labels_path}: no label matches a row of {batch_path}")
    return df, counts, f"{batch_path} + {labels_path.name}"


def declared_columns(spec: Any) -> list[str] | None:
    """The columns a spec declares, the only ones a raw snapshot stores: the target, the
    features, the protected attributes, the slices, the id column and the columns declared
    in ``pii_allowed``. ``None`` when the spec names no features (every column is one)."""
    if spec.features is None:
        return None
    names = [
        spec.target,
        *spec.features,
        *spec.protected_attributes,
        *spec.slices,
        *spec.pii_allowed,
    ]
    if spec.source.id_column:
        names.append(spec.source.id_column)
    return list(dict.fromkeys(names))
