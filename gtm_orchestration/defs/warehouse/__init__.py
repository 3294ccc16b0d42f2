"""Dagster objects of the warehouse stage."""
