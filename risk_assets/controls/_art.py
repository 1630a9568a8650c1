"""Importing the Adversarial Robustness Toolbox quietly."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["art_imports"]


@contextmanager
def art_imports() -> Iterator[None]:
    """Around ART imports: ART announces optional PyTorch features it cannot load (its
    certification estimators); none of them is used here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PyTorch not found")
        yield
