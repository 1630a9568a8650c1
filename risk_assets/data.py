"""Reading sources, content-addressing frames and the seeded train/test split."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from risk_assets.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "FRAME_HASH_SCHEME",
    "MOSTLY_NUMERIC",
    "file_sha256",
    "Split",
    "frame_sha256",
    "numbers_mixed_with_text",
    "read_source",
    "require_columns",
    "select_columns",
    "split_frame",
]

#: Name of the canonical serialisation hashed by :func:`frame_sha256`; recorded beside hashes.
FRAME_HASH_SCHEME = "risk-assets-frame-v1"
#: Share of a text column's values that read as numbers for the column to count as a
#: column of numbers (see :func:`numbers_mixed_with_text`).
MOSTLY_NUMERIC = 0.5


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (suites, policies, model files), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_source(path: str | Path, fmt: str, *, nrows: int | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file (or its first ``nrows`` rows) into a DataFrame.

    Raises:
        DataError: the file is missing, unreadable, empty or has repeated column names (in
            a CSV file: in its header as written, before pandas renames a second ``age``
            to ``age.1``); a CSV file's first data row is longer than its header.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        if fmt == "csv":
            df = pd.read_csv(path, nrows=nrows)
        elif fmt == "parquet" and nrows is not None:
            import pyarrow.parquet as pq

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=nrows), None)
            df = batch.to_pandas() if batch is not None else pd.DataFrame()
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            raise DataError(f"{path}: unsupported format {fmt!r}; expected 'csv' or 'parquet'")
    except DataError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {_one_line(exc)}") from exc
    except Exception as exc:  # pyarrow and friends raise their own types for corrupt files
        raise DataError(
            f"{path}: cannot read as {fmt}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    if df.empty:
        raise DataError(f"{path}: no rows")
    if fmt == "csv":
        _check_csv_header(path)
    names = [str(c) for c in df.columns]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise DataError(f"{path}: repeated column names {dupes}")
    df.columns = names
    return df


def _one_line(exc: BaseException) -> str:
    """A reader's error message on one line (pandas ends its parser errors with a newline)."""
    return " ".join(str(exc).split())


def _check_csv_header(path: Path) -> None:
    """A DataError naming what pandas would read wrongly from a CSV file's header as
    written: a repeated column name (a second ``age`` read as ``age.1``, then trained on
    as a column of its own), or a first data row longer than the header (its leading
    fields read as the index, so that every column holds its neighbour's values)."""
    import csv

    header: list[str] = []
    first: list[str] = []
    line = 0
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                if any(cell.strip() for cell in row):  # pandas skips blank lines too
                    if header:
                        first, line = row, reader.line_num
                        break
                    header = row
    except (csv.Error, UnicodeDecodeError, OSError):
        return  # pandas read it; a header the csv module cannot is no repetition we can see
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(header, start=1):
        if name.strip():  # unnamed columns are read as distinct "Unnamed: N"
            positions.setdefault(name, []).append(i)
    repeated = {name: where for name, where in positions.items() if len(where) > 1}
    if repeated:
        listed = "; ".join(
            f"{name!r} at positions {', '.join(map(str, where))}"
            for name, where in repeated.items()
        )
        raise DataError(
            f"{path}: repeated column name(s) in the header: {listed}; each column needs a "
            "name of its own"
        )
    if len(first) > len(header):
        raise DataError(
            f"{path}: line {line} has {len(first)} fields, the header {len(header)} column "
            "names (a delimiter at the end of each line?); every column would be read "
            "shifted onto its neighbour's values. Give each row as many fields as the "
            "header has names"
        )


def numbers_mixed_with_text(df: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Columns of mixed types: text columns whose values are mostly numbers (at least
    :data:`MOSTLY_NUMERIC` of those present) yet which hold two or more distinct values
    that are not numbers, or a boolean (``True``/``False``); each with up to five of those
    values.

    One repeated placeholder word among numbers (``unknown``) is left to the expectation suite,
    which judges it as it judges any value out of range; several different ones mean the
    column is no column of numbers, and a model would silently train on it as text.
    """
    import pandas as pd

    found: dict[str, list[str]] = {}
    for col in columns:
        series = df[col]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        if not (
            pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)
        ):
            continue  # datetimes, categoricals: a type of their own
        present = series.dropna()
        if present.empty:
            continue
        # as text, a Python bool reads "True"/"False", not a number (pd.to_numeric would
        # read the bool True itself as 1); each distinct text is parsed once, weighted by
        # its rows
        counts = present.astype(str).str.strip().value_counts(sort=False)
        texts = pd.Series(counts.index.to_numpy(dtype=object))
        is_number = pd.to_numeric(texts, errors="coerce").notna().to_numpy()
        if counts.to_numpy()[is_number].sum() < MOSTLY_NUMERIC * len(present):
            continue
        others = texts[~is_number].to_numpy()
        if len(others) >= 2 or any(str(v).lower() in ("true", "false") for v in others):
            found[col] = [str(v) for v in sorted(others, key=str)[:5]]
    return found


def require_columns(
    columns: list[str], *, target: str, features: list[str] | None, source: str | Path
) -> list[str]:
    """The feature columns; raise DataError naming the file and the columns it lacks."""
    columns = list(columns)
    wanted = [target] + (list(features) if features else [c for c in columns if c != target])
    missing = [c for c in wanted if c not in columns]
    if missing:
        role = "target column" if missing == [target] else "columns"
        raise DataError(f"{source}: {role} {missing} not found; the file has {columns}")
    return wanted[1:]


def select_columns(
    df: pd.DataFrame,
    *,
    target: str,
    features: list[str] | None,
    source: str | Path,
    categorical: Collection[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Keep the target and the features; name the file and columns the data lacks.

    Args:
        categorical: the spec's ``categorical_features``: declared categories, whose
            values may be numbers and words alike.

    Raises:
        DataError: a column is missing; the target has missing values, fewer or more than
            two classes (binary classification only); a feature column that is not declared
            categorical holds numbers mixed with other values
            (:func:`numbers_mixed_with_text`).
    """
    features = require_columns(df.columns, target=target, features=features, source=source)
    wanted = [target, *features]
    if df[target].isna().any():
        n = int(df[target].isna().sum())
        raise DataError(f"{source}: target column {target!r} has {n} missing value(s)")
    classes = df[target].unique()
    if len(classes) < 2:
        raise DataError(f"{source}: target column {target!r} has fewer than two classes")
    if len(classes) > 2:
        # every control reads a score as the probability of one positive class: a third
        # class would run as if binary until the slices and fairness gates choke on it
        shown = sorted((v.item() if hasattr(v, "item") else v for v in classes), key=str)
        more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
        raise DataError(
            f"{source}: target column {target!r} has {len(shown)} classes "
            f"{shown[:10]}{more}; risk-assets supports binary classification only (two "
            "classes): map the target to two values"
        )
    declared = set(categorical or ())
    mixed = numbers_mixed_with_text(df, [c for c in wanted[1:] if c not in declared])
    if mixed:
        listed = "; ".join(f"{col!r} holds {values}" for col, values in mixed.items())
        raise DataError(
            f"{source}: column(s) of numbers that also hold other values: {listed}; a "
            "model would train on such a column as text. Clean the values (leave missing "
            "cells empty)"
        )
    return df[wanted], wanted[1:]


def frame_sha256(df: pd.DataFrame) -> str:
    """SHA-256 of a canonical serialisation of a frame (column names, types, nulls, values).

    Independent of the file format and of the pandas version: integers hash as int64,
    floats as float64 (-0.0 as 0.0), booleans as uint8, datetimes as int64 nanoseconds
    and everything else as UTF-8 text, each with its null mask. Row order matters.
    """
    import numpy as np
    import pandas as pd

    h = hashlib.sha256(FRAME_HASH_SCHEME.encode())
    h.update(json.dumps([str(c) for c in df.columns]).encode())
    h.update(f"rows={len(df)}".encode())
    for name in df.columns:
        col = df[name]
        nulls = col.isna().to_numpy(dtype=bool)
        dtype = col.dtype
        if pd.api.types.is_bool_dtype(dtype):
            kind, payload = b"b", [col.fillna(False).to_numpy(dtype=np.uint8).tobytes()]
        elif pd.api.types.is_integer_dtype(dtype):
            kind, payload = b"i", [col.fillna(0).to_numpy(dtype=np.int64).tobytes()]
        elif pd.api.types.is_float_dtype(dtype):
            values = col.to_numpy(dtype=np.float64, na_value=0.0) + 0.0  # -0.0 -> 0.0
            values[nulls] = 0.0
            kind, payload = b"f", [values.tobytes()]
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            values = col.dt.tz_localize(None) if getattr(dtype, "tz", None) else col
            kind, payload = b"t", [values.to_numpy(dtype="datetime64[ns]").view(np.int64).tobytes()]
        else:
            kind, payload = b"s", _text_payload(col, nulls)
        h.update(b"\x00col\x00" + str(name).encode() + b"\x00" + kind)
        h.update(np.packbits(nulls).tobytes())
        for part in payload:
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    return h.hexdigest()


def _text_payload(col: pd.Series, nulls: np.ndarray) -> list[bytes]:
    """UTF-8 bytes of a column as text plus their offsets (from 0), nulls as empty text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:  # string columns convert without a Python loop (pandas 3 stores them in Arrow)
        arr = pa.array(col, from_pandas=True)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            raise TypeError(arr.type)
        arr = pc.fill_null(arr.cast(pa.large_string()), "")
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        text = col.astype(object).where(~nulls, "").map(str)
        arr = pa.array(text.to_numpy(dtype=object), type=pa.large_string())
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = data_buf.to_pybytes()[offsets[0] : offsets[-1]] if data_buf else b""
    return [(offsets - offsets[0]).tobytes(), data]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    seed: int
    test_size: float
    stratified: bool


def split_frame(
    df: pd.DataFrame, *, target: str, test_size: float, seed: int, stratify: bool
) -> Split:
    """Seeded train/test split, stratified on the target when every class allows it."""
    from sklearn.model_selection import train_test_split

    counts = df[target].value_counts()
    n_test = int(math.ceil(test_size * len(df)))
    can_stratify = stratify and counts.min() >= 2 and n_test >= len(counts)
    if len(df) - n_test < 2 or n_test < 1:
        raise DataError(f"{len(df)} rows are too few for a test share of {test_size}")
    train, test = train_test_split(
        df, test_size=test_size, random_state=seed, stratify=df[target] if can_stratify else None
    )
    return Split(
        train=train.reset_index(drop=True),
        test=test.reset_index(drop=True),
        seed=seed,
        test_size=test_size,
        stratified=bool(can_stratify),
    )


def join_labels(
    batch: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    id_column: str,
    target: str,
    batch_source: str | Path,
    labels_source: str | Path,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """A batch with its delayed labels, joined on ``id_column``.

    Rows whose label has not arrived are left out (and counted): a model trains only on
    rows with a known outcome.

    Returns:
        The labelled rows (batch order) and the counts ``rows``, ``labelled``, ``awaiting``
        and ``labels_without_row``.

    Raises:
        DataError: the id column or the target is missing, or an id is repeated.
    """
    for frame, source, needed in (
        (batch, batch_source, [id_column]),
        (labels, labels_source, [id_column, target]),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"{source}: column(s) {missing} not found")
        repeated = int(frame[id_column].duplicated().sum())
        if repeated:
            raise DataError(f"{source}: {repeated} repeated value(s) in id column {id_column!r}")
    if target in batch.columns:
        raise DataError(
            f"{batch_source}: holds the target column {target!r} although its labels come "
            f"from {labels_source}"
        )
    keys = batch[id_column].astype(str)
    label_keys = labels[id_column].astype(str)
    known = keys.isin(set(label_keys))
    by_id = dict(zip(label_keys, labels[target], strict=True))
    out = batch.loc[known].copy()
    out[target] = keys[known].map(by_id).to_numpy()
    if labels[target].dtype.kind in "iub" and not out.empty:
        out[target] = out[target].astype(labels[target].dtype)
    out = out.reset_index(drop=True)
    counts = {
        "rows": len(batch),
        "labelled": int(known.sum()),
        "awaiting": int((~known).sum()),
        "labels_without_row": int((~label_keys.isin(set(keys))).sum()),
    }
    return out, counts
