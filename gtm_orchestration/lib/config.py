"""Loading of the versioned business configuration (YAML) with errors that say where.

Every YAML file under ``gtm_orchestration/config`` is parsed into a pydantic model; a
problem is reported as ``ConfigError`` naming the file, the key path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

ModelT = TypeVar("ModelT", bound=BaseModel)

# libyaml's loader parses the dictionaries ten times faster: runs start cold every time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """A configuration file is missing, unparsable or does not match its schema."""


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}" if parts else item)
    return "".join(parts) or "<root>"


def load_yaml(path: Path) -> object:
    """Parse one YAML file; raise ConfigError naming the file and line on a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Load ``path`` and validate it as ``model``.

    Returns the validated model. Raises ConfigError whose message names the file, every
    offending key path, what was expected and the value found.
    """
    data = load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            found = err.get("input")
            problems.append(f"{_key_path(err['loc'])}: {err['msg']} (found {found!r})")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from exc


def config_path(*parts: str) -> Path:
    """Path of a file in the bundled configuration folder."""
    return CONFIG_DIR.joinpath(*parts)
