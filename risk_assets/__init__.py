"""risk-assets: ML risk controls as Dagster asset checks, lineage and a gated registry in MLflow.

The package stays light to import; heavy libraries load inside the functions that use them.
Public entry points live in submodules:

- :mod:`risk_assets.spec`, :mod:`risk_assets.policy`: the YAML files and their validation;
- :mod:`risk_assets.controls`: pure controls returning :class:`~risk_assets.controls.ControlResult`;
- :mod:`risk_assets.registry`: MLflow lineage, gated registration, safe model loading;
- :mod:`risk_assets.dagster`: the definitions factory and resources.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("risk-assets")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
