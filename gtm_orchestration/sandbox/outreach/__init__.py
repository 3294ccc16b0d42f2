"""Emulated Outreach sequencer (API v2, JSON:API): prospects, sequences, mailboxes and
sequence states."""
