"""The fault corpus's ``--smoke`` selection through the benchmark's own code: German credit
onboarded with ``risk-assets init`` defaults, a clean second run that must register and
three faults that a data gate of the right kind must block (about a minute). The corpus's
commands are forked from a process with the libraries imported (tests/forked_cli.py)."""

from __future__ import annotations

import sys

import pytest
from forked_cli import run_script

from conftest import ROOT

if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

import benchmarks.fault_corpus.run as corpus_run  # noqa: E402
from benchmarks.fault_corpus.faults import SMOKE_DATASET, SMOKE_VARIANTS  # noqa: E402
from benchmarks.fault_corpus.run import run_corpus  # noqa: E402

SMOKE_FAULTS = [v for v in SMOKE_VARIANTS if v != "same_data"]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        # run_script takes the arguments the corpus's START takes
        mp.setattr(corpus_run, "START", run_script)
        results = run_corpus(
            datasets=[SMOKE_DATASET],
            variants=list(SMOKE_VARIANTS),
            work=tmp_path_factory.mktemp("fault-corpus"),
            jobs=1,
            progress=lambda line: None,
        )
    return {o.variant: o for o in results}


def _explain(o) -> str:
    return f"{o.variant}: {o.verdict} (exit {o.exit_code}, blocked by {o.blocked_by}, {o.error})"


def test_the_first_run_on_clean_data_registers(outcomes):
    o = outcomes["baseline"]
    assert o.verdict == "registered", _explain(o)


def test_a_second_run_on_the_same_data_registers(outcomes):
    o = outcomes["same_data"]
    assert o.verdict == "registered", _explain(o)
    assert o.note and "state references rewritten" in o.note


@pytest.mark.parametrize("fault", SMOKE_FAULTS)
def test_each_smoke_fault_is_blocked_by_the_right_gate(outcomes, fault):
    o = outcomes[fault]
    assert o.exit_code == 3, _explain(o)
    assert o.verdict == "right_gate", _explain(o)
    assert set(o.blocked_by) & set(o.right_gates), _explain(o)
