"""risk-assets: ML risk controls as Dagster asset checks, lineage and a gated registry in MLflow.

The package stays light to import; heavy libraries load inside the functions that use them.
Public entry points live in submodules:

- :mod:`risk_assets.spec`, :mod:`risk_assets.policy`: the YAML files and their validation;
- :mod:`risk_assets.pipeline`: a spec with its policy and suite, cross-checked at load;
- :mod:`risk_assets.catalogue`: the one list of controls, each one record;
- :mod:`risk_assets.controls`: pure controls returning :class:`~risk_assets.controls.ControlResult`;
- :mod:`risk_assets.registry`: MLflow lineage (typed tags), gated registration, safe loading;
- :mod:`risk_assets.dagster`: assets, gate checks, sensors, the pipeline as a component,
  resources.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("risk-assets")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
