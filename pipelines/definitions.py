"""Code location: every pipeline spec (``*.yaml``) in this folder, one asset group each."""

from pathlib import Path

from risk_assets.dagster import definitions_from_folder

defs = definitions_from_folder(Path(__file__).parent)
