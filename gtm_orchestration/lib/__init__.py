"""Pure GTM logic: mapping, normalization, personas, scoring, routing, connectors, ledger.

Nothing in this package imports Dagster, so every rule is testable with plain pytest and
the same code serves batch runs, the real-time path, dry runs and backfills.
"""
