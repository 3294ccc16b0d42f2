"""Dagster objects, one folder per stage of the data's journey."""
