"""The positive and the favourable label of a target, resolved in one place.

Two labels matter and they are not the same thing:

- the **positive** label is the class whose probability is the model's score and on which
  precision, recall, F1 and ROC AUC are computed;
- the **favourable** label is the decision that favours a person (credit granted, claim
  paid): fairness and decision-volume controls count how often it is given.

Both come from the spec (``positive_label``, ``favourable_label``) and are matched against
the classes that occur in the target, so that a label written as ``1`` in YAML matches a
target read as ``1.0``, ``"1"`` or ``True``. A label the spec names that never occurs in
the target is refused with the values found: a figure computed on a label that never
occurs would be a bug, not a gate result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from risk_assets.errors import DataError

__all__ = [
    "ADVERSE_TARGET_WORDS",
    "FAVOURABLE_WORDS",
    "Labels",
    "conventional_positive",
    "match_label",
    "positive_scores",
    "resolve_labels",
    "suggest_labels",
]

#: Target values that read as the favourable outcome when a spec names no label; used by
#: ``init`` to pick (and say why), never silently at run time.
FAVOURABLE_WORDS = frozenset(
    {
        "good",
        "yes",
        "y",
        "approved",
        "approve",
        "accepted",
        "accept",
        "granted",
        "paid",
        "repaid",
        "fully paid",
        "true",
        "pass",
        "passed",
        "success",
        "positive",
    }
)


def _canonical(value: Any) -> str:
    """Text of a label that compares 1, 1.0, "1" and True alike."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.bool_):
            return "1" if bool(value) else "0"
        if isinstance(value, np.integer):
            return str(int(value))
        if isinstance(value, np.floating) and float(value).is_integer():
            return str(int(value))
    except ImportError:  # pragma: no cover
        pass
    text = str(value).strip()
    return {"true": "1", "false": "0"}.get(text.lower(), text)


def match_label(value: Any, classes: Iterable[Any]) -> Any | None:
    """The class of ``classes`` that ``value`` names (exactly, else by its text), or None."""
    classes = list(classes)
    for c in classes:
        if type(c) is type(value) and c == value:
            return c
    wanted = _canonical(value)
    found = [c for c in classes if _canonical(c) == wanted]
    return found[0] if len(found) == 1 else None


def _is_binary_01(classes: list[Any]) -> bool:
    return len(classes) == 2 and sorted(_canonical(c) for c in classes) == ["0", "1"]


@dataclass(frozen=True)
class Labels:
    """The target's classes with the positive and the favourable label among them.

    Attributes:
        classes: the classes that occur in the target, in sorted order (as a model sees them).
        positive: the class whose probability is the score (None: more than two classes).
        favourable: the decision that favours a person (None: not set and not inferable).
        positive_reason / favourable_reason: how each was decided, for the evidence.
    """

    classes: tuple[Any, ...]
    positive: Any
    favourable: Any
    positive_reason: str
    favourable_reason: str

    def require_favourable(self, *, target: str, where: str) -> Any:
        """The favourable label, or a DataError naming the spec key to set."""
        if self.favourable is None:
            raise DataError(
                f"{where}: favourable_label is not set and cannot be inferred from target "
                f"{target!r} (its values are {list(self.classes)}); set favourable_label to "
                "the decision that favours a person"
            )
        return self.favourable


def _sorted_classes(values: Iterable[Any]) -> list[Any]:
    import numpy as np
    import pandas as pd

    s = pd.Series(list(values) if not hasattr(values, "dropna") else values)
    # plain Python values, so that messages read 0 and 1, not np.int64(0)
    uniq = [u.item() if isinstance(u, np.generic) else u for u in s.dropna().unique()]
    try:
        return sorted(uniq)
    except TypeError:  # mixed types: sort by text, as a person would read them
        return sorted(uniq, key=str)


def resolve_labels(
    values: Iterable[Any],
    *,
    positive: Any = None,
    favourable: Any = None,
    target: str = "target",
    where: str = "the spec",
) -> Labels:
    """Resolve the positive and favourable labels of a target from its values and the spec.

    Args:
        values: the target's values (or its classes, e.g. a fitted model's ``classes_``).
        positive: the spec's ``positive_label`` (None: not set).
        favourable: the spec's ``favourable_label`` (None: not set).
        target: the target column's name, for messages.
        where: the spec file, for messages.

    Returns:
        :class:`Labels`. Unset labels default as follows: the positive label of a 0/1 or
        boolean target is 1 (True); of another two-class target the last class in sorted
        order (scikit-learn's convention, and said so in ``positive_reason``). The favourable
        label defaults to the positive label when that was set or the target is 0/1, and is
        otherwise left unset (controls that need it refuse to guess).

    Raises:
        DataError: a label the spec names does not occur in the target (values listed), or
            the target has fewer than two classes.
    """
    classes = _sorted_classes(values)
    if len(classes) < 2:
        raise DataError(f"{where}: target {target!r} has fewer than two classes: {classes}")

    def named(key: str, value: Any) -> Any:
        found = match_label(value, classes)
        if found is None:
            raise DataError(
                f"{where}: {key} {value!r} does not occur in target {target!r}; "
                f"its values are {classes}"
            )
        return found

    binary01 = _is_binary_01(classes)
    if positive is not None:
        pos, pos_reason = named("positive_label", positive), "positive_label in the spec"
    elif binary01:
        pos = match_label(1, classes)
        pos_reason = "1 of a 0/1 target"
    elif len(classes) == 2:
        pos = classes[-1]
        pos_reason = "the last class in sorted order (scikit-learn's convention)"
    else:
        pos, pos_reason = None, f"none: {len(classes)} classes (macro averages)"
    if favourable is not None:
        fav, fav_reason = named("favourable_label", favourable), "favourable_label in the spec"
    elif positive is not None or binary01:
        fav, fav_reason = pos, "the positive label"
    else:
        fav, fav_reason = None, "not set"
    return Labels(
        classes=tuple(classes),
        positive=pos,
        favourable=fav,
        positive_reason=pos_reason,
        favourable_reason=fav_reason,
    )


#: Words in a target's name that say its "yes" (or 1) is an adverse event for the person:
#: ``defaulted: yes``, ``readmitted: 1``. Then the favourable decision is the other value.
ADVERSE_TARGET_WORDS = frozenset(
    {
        "default",
        "defaulted",
        "defaults",
        "delinquent",
        "delinquency",
        "fraud",
        "fraudulent",
        "churn",
        "churned",
        "readmit",
        "readmitted",
        "readmission",
        "arrears",
        "chargeoff",
        "charged",
        "died",
        "death",
        "mortality",
        "malignant",
        "disease",
        "attrition",
        "lapse",
        "lapsed",
        "cancelled",
        "canceled",
        "rejected",
        "denied",
        "declined",
        "bad",
    }
)

_NEGATIVE_WORDS = frozenset({"0", "no", "n", "false"})


def suggest_labels(values: Iterable[Any], *, target: str = "") -> tuple[Any, str, bool]:
    """The favourable label ``init`` writes, the reason it prints, and whether it is sure.

    For a 0/1 or yes/no target the target's name decides: a name that reads as an adverse
    event (``default``, ``readmitted``, ``fraud``, ...) makes the other value favourable,
    otherwise 1 / yes is. For other targets, the one class that reads as a favourable
    outcome (``good``, ``approved``, ``paid``, ...). Else the last class in sorted order,
    flagged as a guess the user must check.
    """
    import re

    classes = _sorted_classes(values)
    words = set(re.split(r"[^a-z]+", target.lower())) & ADVERSE_TARGET_WORDS
    negative = [c for c in classes if _canonical(c).lower() in _NEGATIVE_WORDS]
    affirmative = [c for c in classes if _canonical(c).lower() in {"1", "yes", "y"}]
    if len(classes) == 2 and len(negative) == 1 and len(affirmative) == 1:
        if words:
            return (
                negative[0],
                (
                    f"{negative[0]!r}: the target {target!r} names an adverse event "
                    f"({', '.join(sorted(words))})"
                ),
                True,
            )
        return (
            affirmative[0],
            (
                f"{affirmative[0]!r} of a {classes} target whose name {target!r} reads as no "
                "adverse event"
            ),
            True,
        )
    good = [c for c in classes if _canonical(c).lower() in FAVOURABLE_WORDS]
    if len(good) == 1:
        return good[0], f"{good[0]!r} reads as the favourable outcome among {classes}", True
    return (
        classes[-1],
        (f"a guess: the last of {classes} in sorted order; none reads as favourable"),
        False,
    )


def conventional_positive(values: Iterable[Any], favourable: Any) -> tuple[Any, str]:
    """The positive class ``init`` writes: 1 of a 0/1 target and yes of a yes/no target (the
    event a score estimates), else the favourable label."""
    classes = _sorted_classes(values)
    affirmative = [c for c in classes if _canonical(c).lower() in {"1", "yes", "y"}]
    negative = [c for c in classes if _canonical(c).lower() in _NEGATIVE_WORDS]
    if len(classes) == 2 and len(negative) == 1 and len(affirmative) == 1:
        return affirmative[0], f"{affirmative[0]!r}: the event of a {classes} target"
    return favourable, "the favourable label"


def positive_scores(model: Any, frame: Any, spec: Any) -> Any:
    """The model's probability of the spec's positive class for each row.

    Raises:
        DataError: the model has no positive class (not two classes).
    """
    from risk_assets.errors import DataError

    classes = list(model.classes_.tolist())
    positive = spec.labels(classes, where="the champion's classes").positive
    if positive is None:
        raise DataError(f"a score needs a two-class model; the champion has classes {classes}")
    return model.predict_proba(frame)[:, classes.index(positive)]
