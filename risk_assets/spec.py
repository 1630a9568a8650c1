"""The pipeline spec: a YAML file that names the data, the model and the files that govern it.

Example::

    name: credit_risk
    source: {path: data/german_credit.csv}
    target: risk
    protected_attributes: [sex, age]
    estimator:
      class: sklearn.linear_model.LogisticRegression
      params: {max_iter: 1000}
    expectations: ../expectations/credit_risk.json
    policy: policies/credit_risk.yaml
    registered_model: credit_risk

Relative paths are resolved against the folder of the spec file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk_assets._yaml import format_validation_error, read_yaml_mapping
from risk_assets.errors import SpecError

__all__ = [
    "EstimatorSpec",
    "LoadedSpec",
    "PartitionsSpec",
    "PipelineSpec",
    "RetrainingSpec",
    "SourceSpec",
    "SplitSpec",
    "load_spec",
    "parse_partition_key",
]

#: Pipeline names: lower case letters, digits and underscores, starting with a letter.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: File suffixes and the source format they mean.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CLASS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
PiiKind = Literal[
    "*",
    "email",
    "phone",
    "us_ssn",
    "payment_card",
    "iban",
    "ip_address",
    "person_name",
    "column_name",
]
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_NAMES = {
    3: "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec",
    4: "sun|mon|tue|wed|thu|fri|sat",
}
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _cron_field_valid(i: int, field: str) -> bool:
    lo, hi = _CRON_RANGES[i]
    names = _CRON_NAMES.get(i)
    value = rf"(\d+|{names})" if names else r"\d+"
    item = re.compile(rf"^(\*|{value}(-{value})?)(/\d+)?$")
    if field == "?" and i in (2, 4):  # no specific day
        return True
    if i == 4 and re.fullmatch(rf"([0-7]|{names})#[1-5]", field):  # n-th weekday of the month
        return True
    for part in field.split(","):
        if i == 2 and part == "l":  # the last day of the month
            continue
        if item.match(part) is None:
            return False
        numbers = [int(n) for n in re.findall(r"\d+", part.split("/")[0])]
        if any(not lo <= n <= hi for n in numbers):
            return False
        if "/" in part and int(part.split("/")[1]) == 0:
            return False
    return True


def is_valid_cron(expression: str) -> bool:
    """A five-field cron expression (minute hour day-of-month month day-of-week: ``*``,
    lists, ranges, steps, month and day names, ``L`` and ``?`` for the day of the month,
    ``?`` and ``n#k`` for the day of the week) or a macro such as ``@daily``: what
    Dagster's schedules accept, without importing Dagster. A date that never comes
    (30 or 31 February) is refused, as Dagster refuses it."""
    text = expression.strip().lower()
    if text in _CRON_MACROS:
        return True
    fields = text.split()
    if len(fields) != 5 or not all(_cron_field_valid(i, f) for i, f in enumerate(fields)):
        return False
    february = fields[3] == "feb" or (fields[3].isdigit() and int(fields[3]) == 2)
    return not (february and fields[2].isdigit() and int(fields[2]) in (30, 31))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PartitionsSpec(_Strict):
    """How a folder of batch files is partitioned: one file per day or per month."""

    scheme: Literal["daily", "monthly"]
    start: str = Field(description="first partition key: YYYY-MM (monthly) or YYYY-MM-DD (daily)")
    end: str | None = Field(
        default=None,
        description="last partition key (inclusive); default: open, up to the last complete period",
    )

    @model_validator(mode="after")
    def _keys(self) -> PartitionsSpec:
        first = parse_partition_key(self.scheme, self.start, key="start")
        if self.end is not None and parse_partition_key(self.scheme, self.end, key="end") < first:
            raise ValueError(f"end {self.end!r} is before start {self.start!r}")
        return self

    @property
    def key_format(self) -> str:
        return KEY_FORMATS[self.scheme]


#: The partition key format of each scheme (it is also the key in the file names).
KEY_FORMATS = {"daily": "%Y-%m-%d", "monthly": "%Y-%m"}
PLACEHOLDER = "{partition}"


def parse_partition_key(scheme: str, value: str, *, key: str = "partition") -> Any:
    """The date a partition key stands for; ValueError naming the expected format."""
    from datetime import datetime

    fmt = KEY_FORMATS[scheme]
    try:
        parsed = datetime.strptime(str(value), fmt)
    except ValueError:
        shape = "YYYY-MM" if scheme == "monthly" else "YYYY-MM-DD"
        raise ValueError(f"{key} {value!r} is not a {scheme} partition key ({shape})") from None
    if parsed.strftime(fmt) != str(value):
        raise ValueError(f"{key} {value!r} is not a {scheme} partition key")
    return parsed


class SourceSpec(_Strict):
    """Where the training data comes from: one CSV or Parquet file, or a folder of batch
    files with the partition key in their names (``pattern``, e.g.
    ``applications_{partition}.csv``), optionally with delayed labels in files of their own
    (``labels``), joined on ``id_column``."""

    path: str | None = Field(default=None, description="CSV or Parquet file, relative to the spec")
    folder: str | None = Field(default=None, description="folder of batch files (partitioned)")
    pattern: str | None = Field(
        default=None, description="batch file name with {partition}, e.g. batch_{partition}.csv"
    )
    partitions: PartitionsSpec | None = None
    labels: str | None = Field(
        default=None,
        description="file name of a partition's delayed labels, with {partition} (same folder)",
    )
    id_column: str | None = Field(
        default=None, description="the column that joins a batch with its labels"
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="file format; inferred from the suffix when omitted"
    )

    @model_validator(mode="after")
    def _infer_format(self) -> SourceSpec:
        if (self.path is None) == (self.folder is None):
            raise ValueError("give either path (one file) or folder (batch files), not both")
        if self.folder is not None:
            if self.pattern is None or self.partitions is None:
                raise ValueError("a folder of batch files needs pattern and partitions")
            for key in ("pattern", "labels"):
                value = getattr(self, key)
                if value is not None and (
                    value.count(PLACEHOLDER) != 1 or "/" in value or "\\" in value
                ):
                    raise ValueError(
                        f"{key} must be a file name holding {PLACEHOLDER} exactly once, "
                        f"found {value!r}"
                    )
            if self.labels is not None and self.id_column is None:
                raise ValueError("labels in files of their own need id_column to join them")
        else:
            extra = [k for k in ("pattern", "partitions", "labels") if getattr(self, k)]
            if extra:
                raise ValueError(f"{extra} only apply to a folder of batch files")
        if self.format is None:
            name = self.path if self.path is not None else self.pattern
            suffix = Path(name).suffix.lower()
            fmt = FORMATS.get(suffix)
            if fmt is None:
                raise ValueError(
                    f"cannot infer the format of {name!r} from its suffix; "
                    "set source.format to 'csv' or 'parquet'"
                )
            object.__setattr__(self, "format", fmt)
        return self

    @property
    def partitioned(self) -> bool:
        return self.folder is not None


class RetrainingSpec(_Strict):
    """How monitoring asks for retraining."""

    cool_down: int = Field(
        default=3,
        ge=0,
        description="partitions after a request in which a new drift episode asks for none",
    )


class EstimatorSpec(_Strict):
    """A scikit-learn classifier by class path, with its parameters."""

    class_path: str = Field(
        alias="class", description="e.g. sklearn.linear_model.LogisticRegression"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("class_path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _CLASS_PATH.match(value):
            raise ValueError(
                "expected a dotted class path such as sklearn.ensemble.RandomForestClassifier"
            )
        return value


class SplitSpec(_Strict):
    """The seeded train/test split."""

    test_size: float = Field(default=0.25, gt=0.0, lt=1.0)
    seed: int = Field(default=42, ge=0)
    stratify: bool = True


class PipelineSpec(_Strict):
    """The validated content of a pipeline spec file."""

    name: str = Field(description="pipeline name: lower case letters, digits and underscores")
    description: str = ""
    owner: str | None = None
    source: SourceSpec
    serving_source: SourceSpec | None = Field(
        default=None, description="recent scoring inputs (features), for the skew control"
    )
    target: str = Field(min_length=1)
    positive_label: int | str | None = None
    favourable_label: int | str | None = Field(
        default=None,
        description="the decision that favours a person (fairness); default: positive_label",
    )
    features: list[str] | None = None
    categorical_features: list[str] | None = None
    protected_attributes: list[str] = Field(default_factory=list)
    slices: list[str] = Field(
        default_factory=list, description="columns whose segments the slices control compares"
    )
    protected_bands: dict[str, list[float]] = Field(
        default_factory=dict,
        description="band edges for continuous protected attributes, e.g. {age: [25]}",
    )
    pii_allowed: dict[str, list[PiiKind]] = Field(
        default_factory=dict,
        description="columns allowed to hold PII, with the kinds allowed ('*' for any)",
    )
    estimator: EstimatorSpec = Field(
        default_factory=lambda: EstimatorSpec(
            class_path="sklearn.linear_model.LogisticRegression", params={"max_iter": 1000}
        )
    )
    split: SplitSpec = Field(default_factory=SplitSpec)
    expectations: str = Field(min_length=1, description="Great Expectations suite (JSON)")
    policy: str = Field(min_length=1, description="risk policy (YAML)")
    registered_model: str | None = None
    training_window: int = Field(
        default=1, ge=1, description="partitions a model trains on: the last N up to its own"
    )
    schedule: str | None = Field(
        default=None, description="cron schedule of periodic retraining, e.g. '0 6 2 * *'"
    )
    retraining: RetrainingSpec = Field(default_factory=RetrainingSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "expected lower case letters, digits and underscores, starting with a letter"
            )
        return value

    @field_validator("registered_model")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_NAME.match(value):
            raise ValueError("expected letters, digits, '_', '-' or '.'")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_cron(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> PipelineSpec:
        if self.training_window > 1 and not self.source.partitioned:
            raise ValueError("training_window needs a partitioned source (source.folder)")
        if self.source.id_column is not None:
            if self.source.id_column == self.target:
                raise ValueError("source.id_column must not be the target column")
            if self.features is not None and self.source.id_column in self.features:
                raise ValueError("source.id_column must not be a feature")
        for key in ("features", "categorical_features", "protected_attributes"):
            cols = getattr(self, key) or []
            dupes = sorted({c for c in cols if cols.count(c) > 1})
            if dupes:
                raise ValueError(f"{key} lists {dupes} more than once")
            if self.target in cols:
                raise ValueError(f"{key} must not contain the target column {self.target!r}")
        unbanded = sorted(set(self.protected_bands) - set(self.protected_attributes))
        if unbanded:
            raise ValueError(f"protected_bands names {unbanded}, not in protected_attributes")
        if self.target in self.slices:
            raise ValueError("slices must not contain the target column")
        if self.features is not None:
            unknown = sorted(set(self.slices) - set(self.features) - set(self.protected_attributes))
            if unknown:
                raise ValueError(f"slices names {unknown}, neither features nor protected")
        for col, edges in self.protected_bands.items():
            if not edges or sorted(edges) != edges or len(set(edges)) != len(edges):
                raise ValueError(f"protected_bands.{col}: expected increasing band edges")
        if self.features is not None:
            if not self.features:
                raise ValueError("features is empty; omit it to use every column but the target")
            for key in ("categorical_features",):
                extra = sorted(set(getattr(self, key) or []) - set(self.features))
                if extra:
                    raise ValueError(f"{key} names columns that are not features: {extra}")
        return self

    def labels(self, values: Any, *, where: str | Path = "the spec") -> Any:
        """The positive and favourable labels resolved against the target's values (or a
        model's classes); see :func:`risk_assets.labels.resolve_labels`."""
        from risk_assets.labels import resolve_labels

        return resolve_labels(
            values,
            positive=self.positive_label,
            favourable=self.favourable_label,
            target=self.target,
            where=str(where),
        )

    @property
    def model_name(self) -> str:
        """Name of the production registered model (candidates go to ``<name>-candidates``)."""
        return self.registered_model or self.name


@dataclass(frozen=True)
class LoadedSpec:
    """A spec with its file, its resolved paths and the SHA-256 of its bytes."""

    spec: PipelineSpec
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def partitioned(self) -> bool:
        return self.spec.source.partitioned

    @property
    def source_path(self) -> Path:
        """The source file, or the folder of batch files of a partitioned source."""
        src = self.spec.source
        return _resolve(self.path, src.path if src.path is not None else src.folder)

    def batch_path(self, partition: str) -> Path:
        """The batch file of one partition."""
        return self._partition_file(self.spec.source.pattern, partition)

    def labels_path(self, partition: str) -> Path | None:
        """The delayed-labels file of one partition (None when batches carry their labels)."""
        pattern = self.spec.source.labels
        return None if pattern is None else self._partition_file(pattern, partition)

    def _partition_file(self, pattern: str, partition: str) -> Path:
        parts = self.spec.source.partitions
        try:
            parse_partition_key(parts.scheme, partition)
        except ValueError as exc:
            raise SpecError(f"{self.path}: {exc}") from None
        return self.source_path / pattern.replace(PLACEHOLDER, partition)

    @property
    def serving_path(self) -> Path | None:
        src = self.spec.serving_source
        return None if src is None else _resolve(self.path, src.path)

    @property
    def suite_path(self) -> Path:
        return _resolve(self.path, self.spec.expectations)

    @property
    def policy_path(self) -> Path:
        return _resolve(self.path, self.spec.policy)


def _resolve(spec_path: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (spec_path.parent / p).resolve()


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate a pipeline spec.

    Raises:
        SpecError: the file is missing or invalid; the message names the file and the key.
    """
    path = Path(path).resolve()
    raw = read_yaml_mapping(path, error=SpecError, what="spec")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from None
    loaded = LoadedSpec(spec=spec, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    if loaded.serving_path is not None and not loaded.serving_path.is_file():
        raise SpecError(f"{path}: serving_source.path: file not found: {loaded.serving_path}")
    if loaded.partitioned and not loaded.source_path.is_dir():
        raise SpecError(f"{path}: source.folder: folder not found: {loaded.source_path}")
    for key, target in (
        *((("source.path", loaded.source_path),) if not loaded.partitioned else ()),
        ("expectations", loaded.suite_path),
        ("policy", loaded.policy_path),
    ):
        if not target.is_file():
            raise SpecError(f"{path}: {key}: file not found: {target}")
    return loaded
