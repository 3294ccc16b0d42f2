"""Dagster objects of the extract stage."""
