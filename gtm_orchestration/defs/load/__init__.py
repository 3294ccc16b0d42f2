"""Dagster objects of the load stage."""
