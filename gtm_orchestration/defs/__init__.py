"""Dagster objects, one folder per stage of the data's journey."""

import warnings

import dagster as dg

# Single-run backfills are what lets a date range re-process in one run; Dagster marks the
# parameter beta, which is a note for us, not for every user of the CLI.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)
