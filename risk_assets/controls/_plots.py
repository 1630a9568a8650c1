"""PNG plots of a gate's table, for the MLflow run (artefacts ``gates/<check>.png``).

One plot per control that has a natural picture: drift (the effect size per feature), fairness
(selection rate, TPR and FPR per group), slices (the metric per segment) and
explainability (permutation importance). Pure functions of a :class:`ControlResult`:
they draw only what the table already holds (figures, never data values), with
matplotlib's object API (no global pyplot state).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from risk_assets.controls._result import ControlResult

__all__ = [
    "drift_figure",
    "fairness_figure",
    "importance_figure",
    "plot_png",
    "slices_figure",
]

_RED, _GREY, _BLUE = "#c0392b", "#7f8c8d", "#2c6fbb"


def _figure(rows: int) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, max(2.5, 0.35 * rows + 1.4)), layout="constrained")
    return fig, fig.subplots()


def drift_figure(result: ControlResult, title: str) -> Any:
    rows = [r for r in result.table if "effect" in r and r.get("kind") != "multivariate"]
    fig, ax = _figure(len(rows))
    names = [r["feature"] for r in rows]
    ax.barh(names, [r["effect"] for r in rows], color=[_RED if r["drift"] else _BLUE for r in rows])
    ax.scatter(
        [r["effect_threshold"] for r in rows], names, marker="|", s=300, color=_GREY,
        label="threshold",
    )  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("KS distance (numbers) / TV distance (categories, missing); red: drift")
    ax.legend(loc="lower right", fontsize="small")
    for r in result.table:
        if r.get("kind") == "multivariate":  # its own line under the title
            verdict = "drift" if r["drift"] else "no drift"
            title += f"\nall features (classifier): {verdict}, KS {r['classifier_ks']:.2f}"
    ax.set_title(title)
    return fig


def fairness_figure(result: ControlResult, title: str) -> Any:
    import numpy as np

    rows = [r for r in result.table if "selection_rate" in r]  # decisions, not labels
    fig, ax = _figure(2 * len(rows))
    x = np.arange(len(rows))
    for k, (key, label) in enumerate(
        [("selection_rate", "selection rate"), ("tpr", "TPR"), ("fpr", "FPR")]
    ):
        ax.bar(x + (k - 1) * 0.27, [r[key] for r in rows], width=0.27, label=label)
    ax.set_xticks(x, [f"{r['group']}\n({r['rows']} rows)" for r in rows])
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title)
    return fig


def slices_figure(result: ControlResult, title: str) -> Any:
    rows = result.table
    metric = next(k for k in rows[0] if k not in ("slice", "segment", "rows", "in_verdict"))
    fig, ax = _figure(len(rows))
    names = [f"{r['slice']}={r['segment']} ({r['rows']})" for r in rows]
    colours = [_BLUE if r["in_verdict"] else _GREY for r in rows]
    ax.barh(names, [r[metric] for r in rows], color=colours)
    if result.threshold is not None:
        ax.axvline(result.threshold, color=_RED, linestyle="--", label="minimum")
        ax.legend(loc="lower right", fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{metric} per segment (grey: too small to judge)")
    ax.set_title(title)
    return fig


def importance_figure(result: ControlResult, title: str) -> Any:
    rows = result.table
    fig, ax = _figure(len(rows))
    ax.barh(
        [r["feature"] for r in rows],
        [r["importance"] for r in rows],
        xerr=[r["importance_sd"] for r in rows],
        color=[_RED if r.get("flag") else _BLUE for r in rows],
    )
    ax.invert_yaxis()
    ax.set_xlabel("permutation importance (red: protected attribute or proxy)")
    ax.set_title(title)
    return fig


def plot_png(
    draw: Callable[[ControlResult, str], Any] | None, check: str, result: ControlResult
) -> bytes | None:
    """A gate's plot as PNG bytes, drawn by ``draw`` (a control's figure function, from
    its catalogue entry); None when the control has no plot or the result no table."""
    if draw is None or not result.table:
        return None
    fig = draw(result, f"{check}: {'passed' if result.passed else 'FAILED'}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
