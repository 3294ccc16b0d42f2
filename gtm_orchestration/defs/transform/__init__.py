"""Dagster objects of the transform stage."""
