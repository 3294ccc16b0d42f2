"""Code versions of the pipeline's assets, from the configuration each stage applies.

An asset's code version changes when the mapping registry version or a rule file it
applies changes, so after such a change the UI marks the asset and everything downstream
stale, and a backfill of the affected days re-derives them from the landing zone. Loads
re-send only records whose payload changed (the sync ledger compares digests).
"""

import hashlib
from pathlib import Path

from gtm_orchestration.lib.config import config_path
from gtm_orchestration.lib.mapping import load_registry

# The rule files each stage applies, relative to the configuration folder.
TRANSFORM_RULES = (
    "dictionaries",
    "personas.yaml",
    "scoring.yaml",
    "territories.yaml",
    "exchange_rates.yaml",
    "identity.yaml",
)
LOAD_RULES = ("crm",)
ENGAGEMENT_RULES = ("engagement.yaml",)


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def _rule_files(names: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in names:
        path = config_path(name)
        files.extend(sorted(path.rglob("*.yaml")) if path.is_dir() else [path])
    return files


def mapping_version() -> str:
    """The registry in force: its version and a digest of its file."""
    registry = load_registry()
    return f"mapping-v{registry.version}-{_digest([registry.path])}"


def extract_version() -> str:
    return mapping_version()


def transform_version() -> str:
    return f"{mapping_version()}-rules-{_digest(_rule_files(TRANSFORM_RULES))}"


def engagement_version() -> str:
    return f"engagement-{_digest(_rule_files(ENGAGEMENT_RULES))}"


def load_version() -> str:
    return f"{mapping_version()}-crm-{_digest(_rule_files(LOAD_RULES))}"
