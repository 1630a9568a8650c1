"""Columns of every type pandas reads from a CSV or a Parquet file, for the control tests.

Each added column is random (seeded) and unrelated to the target, so a control's verdict
on clean data must not change when they are added.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Recognisable raw values planted in the data: none may ever appear in evidence.
SECRET_TEXT = "zz_SECRET_9f3"
SECRET_NUMBER = 987654.321

#: Added columns the project's estimator can be trained on, by kind.
NUMERIC_TYPES = ["dependents", "empty", "empty_int", "self"]
#: Nullable ``boolean`` and ``string`` columns with gaps (``pd.NA``, as Parquet gives them).
NULLABLE_TYPES = ["flag_nullable", "note_string"]
CATEGORICAL_TYPES = ["flag", "flag_text", "region", "opened", "note", "empty_text", *NULLABLE_TYPES]


def with_column_types(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """``frame`` plus one column of each type:

    - ``flag``: bool; ``flag_text``: True/False/missing as CSV reads it (object);
      ``flag_nullable``: nullable ``boolean`` with gaps (Parquet);
    - ``dependents``: nullable ``Int64`` with gaps (Parquet);
    - ``region``: ``category`` with gaps;
    - ``opened``: datetime64 with gaps (NaT), month starts (a cohort date);
    - ``note``: ``str`` with gaps (CSV text); ``note_string``: ``string`` with ``pd.NA`` gaps;
    - ``empty``: all missing, float (an empty CSV column); ``empty_int``: all missing,
      ``Int64``; ``empty_text``: all missing, object (``None``, from Parquet);
    - ``self``: a float column whose name is a Python keyword-argument trap.
    """
    rng = np.random.default_rng(seed)
    n = len(frame)
    out = frame.copy()

    def gaps(values: pd.Series, share: float = 0.1) -> pd.Series:
        values = values.copy()
        values[rng.random(n) < share] = None
        return values

    index = frame.index
    out["flag"] = pd.Series(rng.random(n) < 0.3, index=index)
    out["flag_text"] = gaps(pd.Series(rng.random(n) < 0.5, index=index, dtype=object))
    out["flag_nullable"] = gaps(
        pd.Series(pd.array(rng.random(n) < 0.5, dtype="boolean"), index=index)
    )
    out["dependents"] = gaps(pd.Series(pd.array(rng.integers(0, 4, n), dtype="Int64"), index=index))
    out["region"] = gaps(
        pd.Series(pd.Categorical(rng.choice(["north", "south", "east"], n)), index=index)
    )
    out["opened"] = gaps(
        pd.Series(
            pd.date_range("2020-01-01", periods=24, freq="MS")[rng.integers(0, 24, n)]
        ).set_axis(index)
    )
    out["note"] = gaps(pd.Series(rng.choice(["short", "long"], n), index=index).astype("str"))
    out["note_string"] = gaps(
        pd.Series(pd.array(rng.choice(["short", "long"], n), dtype="string"), index=index)
    )
    out["empty"] = pd.Series(np.nan, index=index, dtype=float)
    out["empty_int"] = pd.Series(pd.NA, index=index, dtype="Int64")
    out["empty_text"] = pd.Series(None, index=index, dtype=object)
    out["self"] = pd.Series(rng.normal(size=n), index=index)
    return out
