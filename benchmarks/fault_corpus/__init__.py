"""Fault corpus: catch and false-block rates of the gated pipeline through the CLI.

Run ``python -m benchmarks.fault_corpus --help`` from the repository root.
"""

from benchmarks.fault_corpus.run import Outcome, main, report, run_corpus

__all__ = ["Outcome", "main", "report", "run_corpus"]
