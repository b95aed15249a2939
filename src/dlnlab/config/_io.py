"""Reading and writing configs: TOML files, ``section.key=value`` overrides (``--set``)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._config import Config


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], value). The value is read as TOML; bare words are strings."""
    if "=" not in item:
        raise ConfigError("--set", item, "key=value with a dotted key, e.g. dynamics.lr=0.01")
    key, raw = item.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 or not all(path):
        raise ConfigError("--set", item, "a key of the form section.key, e.g. dynamics.lr=0.01")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """A copy of the config table ``d`` with the ``section.key=value`` overrides applied."""
    out = copy.deepcopy(d)
    for item in overrides or []:
        (sec, key), value = parse_override(item)
        out.setdefault(sec, {})
        if not isinstance(out[sec], dict):
            raise ConfigError(sec, out[sec], "a table of keys")
        out[sec][key] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a TOML config, apply ``section.key=value`` overrides, validate."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError("CONFIG", str(p), f"a readable TOML file ({exc.strerror})") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("CONFIG", str(p), f"valid TOML ({exc})") from None
    return Config.from_dict(apply_overrides(d, overrides or []))


def config_to_toml(c: Config) -> str:
    """Serialise a config as TOML (inverse of :func:`load_config`)."""
    import tomli_w

    return tomli_w.dumps(c.to_dict())
