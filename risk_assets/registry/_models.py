"""Saving and loading models safely: skops only, our own trusted types, hashes verified."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import yaml

from risk_assets._yaml import load_file_bounded
from risk_assets.data import file_sha256
from risk_assets.errors import IntegrityError

__all__ = [
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "check_model_dir",
    "file_sha256",
    "load_model_dir",
    "save_model_dir",
]

MODEL_FILE = "model.skops"

#: Types beyond skops' own defaults that risk-assets trusts when loading a model. This list
#: is ours: the one stored in a model's MLmodel file is never used.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "risk_assets.estimator.PlainColumns",
)


def save_model_dir(model: Any, path: str | Path, *, X_sample: Any) -> str:
    """Save a fitted sklearn model as an MLflow model folder in skops format.

    The signature records column names and types only; no input example is stored, so no
    data values travel with the model. Returns the SHA-256 of the skops file.
    """
    import mlflow.sklearn
    import sklearn
    import skops
    from mlflow.models import infer_signature

    path = Path(path)
    # Integer columns are declared as doubles: a missing value at scoring time turns an
    # integer column into floats, which an integer schema would reject.
    ints = [c for c in X_sample.columns if X_sample[c].dtype.kind in "iu"]
    schema_sample = X_sample.astype({c: "float64" for c in ints})
    signature = infer_signature(schema_sample, model.predict(X_sample))
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=signature,
        # stated, not inferred: MLflow infers requirements by loading the model, which
        # risk-assets does not allow its loaders to do
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
    )
    model_file = path / MODEL_FILE
    if not model_file.is_file():
        raise IntegrityError(f"MLflow did not write {MODEL_FILE} in {path}")
    return file_sha256(model_file)


def load_model_dir(path: str | Path, *, expected_sha256: str) -> Any:
    """Load a model folder written by :func:`save_model_dir`, refusing anything unsafe
    (see :func:`check_model_dir`).

    Raises:
        IntegrityError: naming the file and the reason.
    """
    import skops.io as sio

    model_file = check_model_dir(path, expected_sha256=expected_sha256)
    return sio.load(model_file, trusted=list(TRUSTED_TYPES))


def check_model_dir(path: str | Path, *, expected_sha256: str) -> Path:
    """Every check :func:`load_model_dir` makes, without loading: the skops file's path.

    Refused: a model that is not in skops format, a model path that leaves the folder,
    ``code`` paths, flavours other than ``sklearn`` and its ``python_function`` (which must
    load the same file with ``mlflow.sklearn``, as :func:`save_model_dir` writes it), a
    file whose SHA-256 differs from ``expected_sha256``, a file that is not a skops archive
    at all (a pickle), and any type outside skops' defaults and :data:`TRUSTED_TYPES`. The
    whole MLmodel is checked although only the skops file is loaded: MLflow's own loaders
    follow it.

    Raises:
        IntegrityError: naming the file and the reason.
    """
    import skops.io as sio

    root = Path(path).resolve()
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise IntegrityError(f"{root}: no MLmodel file")
    try:
        meta = load_file_bounded(mlmodel) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{mlmodel}: not a readable MLmodel file: {exc}") from exc
    if not isinstance(meta, dict):
        raise IntegrityError(f"{mlmodel}: not an MLmodel mapping")
    flavors = meta.get("flavors") or {}
    if not isinstance(flavors, dict) or not all(isinstance(f, dict) for f in flavors.values()):
        raise IntegrityError(f"{mlmodel}: flavors is not a mapping of mappings")
    flavor = flavors.get("sklearn") or {}
    if flavor.get("serialization_format") != "skops":
        raise IntegrityError(
            f"{mlmodel}: serialization_format is {flavor.get('serialization_format')!r}; "
            "only 'skops' models are loaded"
        )
    if any(f.get("code") for f in flavors.values()):
        raise IntegrityError(f"{mlmodel}: models with code paths are refused")
    model_file = _inside(root, mlmodel, flavor.get("pickled_model"))
    _check_pyfunc(root, mlmodel, flavors, model_file)
    if not model_file.is_file():
        raise IntegrityError(f"{model_file}: model file missing")
    actual = file_sha256(model_file)
    if actual != expected_sha256:
        raise IntegrityError(
            f"{model_file}: SHA-256 {actual} does not match the recorded {expected_sha256}"
        )
    # refused for what the bytes are (a pickle under the skops file's name) before skops
    # parses them
    if not zipfile.is_zipfile(model_file):
        raise IntegrityError(f"{model_file}: not a skops file (not a zip archive)")
    try:
        found = sio.get_untrusted_types(file=model_file)
    except (KeyError, ValueError) as exc:
        raise IntegrityError(f"{model_file}: not a readable skops file: {exc}") from exc
    untrusted = sorted(set(found) - set(TRUSTED_TYPES))
    if untrusted:
        raise IntegrityError(f"{model_file}: untrusted types {untrusted}")
    return model_file


def _inside(root: Path, mlmodel: Path, name: Any) -> Path:
    """The file ``name`` names in the model folder ``root``; refused if it leaves it."""
    path = (root / str(name or "")).resolve()
    if root not in path.parents:
        raise IntegrityError(f"{mlmodel}: model path {name!r} leaves the model folder")
    return path


def _check_pyfunc(root: Path, mlmodel: Path, flavors: dict, model_file: Path) -> None:
    """Refuse flavours other than sklearn and a python_function that would load anything
    but ``model_file`` with ``mlflow.sklearn`` (a pickled ``python_model``, another loader
    module): MLflow's ``pyfunc.load_model`` and ``mlflow models serve`` follow it."""
    others = sorted(set(flavors) - {"sklearn", "python_function"})
    if others:
        raise IntegrityError(
            f"{mlmodel}: flavours {others} are refused; only sklearn (skops) is loaded"
        )
    pyfunc = flavors.get("python_function")
    if pyfunc is None:
        return
    loader = pyfunc.get("loader_module")
    if loader != "mlflow.sklearn":
        raise IntegrityError(
            f"{mlmodel}: python_function loader_module is {loader!r}; only 'mlflow.sklearn' "
            "is allowed"
        )
    for key in ("model_path", "data"):
        if key in pyfunc and _inside(root, mlmodel, pyfunc[key]) != model_file:
            raise IntegrityError(
                f"{mlmodel}: python_function {key} {pyfunc[key]!r} is not the sklearn model "
                f"file {model_file.name!r}"
            )
