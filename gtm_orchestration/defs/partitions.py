"""Landed data is partitioned by the UTC day it landed, so backfills re-process days."""

import dagster as dg

from gtm_orchestration.lib.landing import PARTITION_START

# end_offset=1 makes today's partition exist while today's files are still arriving.
landing_day = dg.DailyPartitionsDefinition(
    start_date=PARTITION_START.isoformat(), end_offset=1, timezone="UTC"
)

# Nightly work covers a finished day: the partition of a day exists once the day is over.
nightly_day = dg.DailyPartitionsDefinition(start_date=PARTITION_START.isoformat(), timezone="UTC")
