"""Pipelines as Dagster components: a ``defs.yaml`` points at a spec, the root adds resources.

A pipeline's spec and the policy it names stay files (their SHA-256 is recorded evidence of
every run), so the component carries no pipeline settings of its own: only the path of the
spec. Resources and the executor are not part of a component's definitions; they are
defined once at the root (:func:`definitions_from_defs_folder`), so that two pipelines side
by side never define the same resource key twice.
"""

import dataclasses
import hashlib
import importlib.machinery
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import dagster as dg
from pydantic import BaseModel, Field

from risk_assets.dagster._definitions import build_pipeline_definitions, root_definitions
from risk_assets.errors import ConfigError, SpecError
from risk_assets.pipeline import load_pipeline

__all__ = ["RiskAssetsPipeline", "RiskAssetsPipelineScaffolder", "definitions_from_defs_folder"]

_COMPONENT_FILES = ("defs.yaml", "defs.yml", "component.yaml")
_CODE_REFERENCES = "dagster/code_references"


class RiskAssetsPipelineScaffoldParams(BaseModel):
    """What ``dg scaffold defs risk_assets.dagster.RiskAssetsPipeline PATH`` asks for."""

    spec: str = Field(
        description="Path of an existing pipeline spec, relative to the new defs.yaml "
        "(e.g. ../../credit_risk.yaml).",
    )


class RiskAssetsPipelineScaffolder(dg.Scaffolder[RiskAssetsPipelineScaffoldParams]):
    """Writes a ``defs.yaml`` that points at an existing pipeline spec.

    The spec itself (with its policy and expectation suite) is written by
    ``risk-assets init DATA --name N``: run that first, then scaffold the component with the
    spec's path relative to the new folder.

    Raises:
        SpecError: the spec does not exist where the ``defs.yaml`` would look for it.
    """

    @classmethod
    def get_scaffold_params(cls) -> type[RiskAssetsPipelineScaffoldParams]:
        return RiskAssetsPipelineScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[RiskAssetsPipelineScaffoldParams]) -> None:
        if request.scaffold_format != "yaml":
            raise SpecError(
                f"{request.target_path}: RiskAssetsPipeline is scaffolded as a defs.yaml "
                f"only, not {request.scaffold_format!r}"
            )
        spec = (Path(request.target_path) / request.params.spec).resolve()
        if not spec.is_file():
            raise SpecError(
                f"{request.target_path}: spec {request.params.spec!r} not found (looked for "
                f"{spec}); write it first with `risk-assets init DATA --name NAME`"
            )
        dg.scaffold_component(request, {"spec": request.params.spec})


def _component_file(folder: Path) -> str:
    """The file that declares the component in ``folder``, for error messages."""
    for name in _COMPONENT_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    return f"the component at {folder}"


def _with_spec_reference(spec: dg.AssetSpec, reference: dg.LocalFileCodeReference):
    existing = spec.metadata.get(_CODE_REFERENCES)
    references = list(existing.code_references) if existing is not None else []
    return spec.replace_attributes(
        metadata={
            **spec.metadata,
            _CODE_REFERENCES: dg.CodeReferencesMetadataValue(
                code_references=[*references, reference]
            ),
        }
    )


@dg.scaffold_with(RiskAssetsPipelineScaffolder)
class RiskAssetsPipeline(dg.Component, dg.Model, dg.Resolvable):
    """One pipeline spec as assets, gates (asset checks), jobs, sensors and schedules.

    The component only points at the spec; the spec names its policy and expectation
    suite. Its definitions carry no resources and no executor: the root defines them once
    (see :func:`definitions_from_defs_folder`). Each asset links back to its spec file.

    Example ``defs.yaml``:

    .. code-block:: yaml

        type: risk_assets.dagster.RiskAssetsPipeline
        attributes:
          spec: ../../credit_risk.yaml
    """

    spec: str = Field(
        description="Path of the pipeline spec YAML, relative to the defs.yaml that names it.",
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """Load and validate the spec, its policy and suite; build the pipeline's definitions.

        Raises:
            SpecError, PolicyError, SuiteError: naming the file (and the key) at fault; a
                missing spec names the ``defs.yaml`` and the path it looked for.
        """
        return self.definitions_in(Path(context.path))

    def definitions_in(self, folder: Path) -> dg.Definitions:
        """The definitions of this component declared in ``folder`` (its ``defs.yaml``'s
        folder), without a Dagster load context: what ``risk-assets init --defs`` checks."""
        path = (Path(folder) / self.spec).resolve()
        where = _component_file(Path(folder))
        if not path.is_file():
            raise SpecError(
                f"{where}: attributes.spec: file not found: {path} (from {self.spec!r})"
            )
        try:
            pipeline = load_pipeline(path)
        except ConfigError as exc:
            raise type(exc)(f"{exc} (the spec named by {where})") from exc
        built = build_pipeline_definitions(pipeline)
        with warnings.catch_warnings():
            # code references are a beta API of dagster's, used as its components use them
            warnings.simplefilter("ignore", dg.BetaWarning)
            reference = dg.LocalFileCodeReference(
                file_path=str(path),
                line_number=1,
                label=f"pipeline spec {built.pipeline.spec.name}",
            )
            assets = [
                a.map_asset_specs(lambda s: _with_spec_reference(s, reference))
                for a in built.assets
            ]
        return dataclasses.replace(built, assets=assets).to_definitions()


def _project_root(folder: Path) -> Path:
    for parent in (folder, *folder.parents):
        if (parent / "pyproject.toml").is_file() or (parent / "setup.py").is_file():
            return parent
    return folder.parent


def _defs_module(folder: Path) -> ModuleType:
    """A package for ``folder`` whether or not it is importable, so Python files in it load.

    Its name is derived from the folder's path: loading the same folder again (a run
    worker reloading the code location) gives the same module.
    """
    name = "risk_assets_defs_" + hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    module = sys.modules.get(name)
    if module is not None and list(getattr(module, "__path__", [])) == [str(folder)]:
        return module
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(folder / "__init__.py")  # dagster locates a defs folder by it
    sys.modules[name] = module
    return module


def _own_error(exc: BaseException) -> ConfigError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def definitions_from_defs_folder(folder: str | Path) -> dg.Definitions:
    """Definitions for every component under a defs folder, with the resources once.

    Each ``defs.yaml`` under ``folder`` declares a component (here a
    :class:`RiskAssetsPipeline` pointing at a spec). The folder need not be an installed
    package. The components' definitions are merged with one set of resources (the
    embedded defaults of ``default_resources``, moved by the environment) and the
    executor.

    The executor is in-process: a run's steps execute one after another in the run's own
    process, because the embedded SQLite Dagster instance must not be written by several
    processes at once (dagster issue 2884). Parallel runs belong on a PostgreSQL-backed
    instance.

    Example (a code location module)::

        defs = definitions_from_defs_folder(Path(__file__).parent / "defs")

    Raises:
        SpecError: ``folder`` is not a folder. Errors in a component (a missing spec, a bad
            policy) raise at load, naming its ``defs.yaml`` and the file at fault.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise SpecError(f"{folder}: defs folder not found")
    tree = dg.ComponentTree(defs_module=_defs_module(folder), project_root=_project_root(folder))
    with warnings.catch_warnings():
        # dagster links each asset to its defs.yaml with a beta API, once per asset
        warnings.simplefilter("ignore", dg.BetaWarning)
        try:
            components = tree.build_defs()
        except Exception as exc:
            # dagster wraps a component's error in a tree of the folder; our own errors name
            # the defs.yaml and the file at fault, so they are the message to end on
            cause = _own_error(exc)
            if cause is None:
                raise
            raise type(cause)(str(cause)) from exc
    return dg.Definitions.merge(components, root_definitions())
