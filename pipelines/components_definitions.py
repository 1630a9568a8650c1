"""Code location: each component under defs/ (one defs.yaml per pipeline), resources once.

`pipelines/definitions.py` loads every spec in this folder without components; this module
loads only the pipelines that a ``defs.yaml`` under ``defs/`` names.
"""

from pathlib import Path

from risk_assets.dagster import definitions_from_defs_folder

defs = definitions_from_defs_folder(Path(__file__).parent / "defs")
