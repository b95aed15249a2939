"""Grids of config values: ``key=v1,v2`` parsing (values read as TOML) and the checks of a grid's keys and values."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import FIELDS, ConfigError


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_key(key: Any, values: Any) -> str:
    """A grid key is a config key of :data:`dlnlab.config.FIELDS` (its values are checked when each run's config
    is validated)."""
    if not isinstance(key, str) or key.count(".") != 1 or not all(key.split(".")):
        raise ConfigError("--grid", key, "a dotted config key section.key, e.g. dynamics.lr")
    if key not in FIELDS:
        raise ConfigError(key, values, f"a config key among {', '.join(FIELDS)}")
    return key


def parse_value(raw: str):
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def split_top(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in raw:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["dynamics.lr=0.01,0.02", "network.width=10,20"]`` -> ``{"dynamics.lr": [0.01, 0.02], ...}``.

    Each value is read as TOML (``[10, 20]`` is a list, bare words are strings)."""
    grid: dict[str, list] = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError("--grid", item, "key=v1,v2,... with a dotted key, e.g. dynamics.lr=0.01,0.02")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key in grid:
            raise ConfigError(key, raw, "each grid key given once")
        if not raw.strip():
            raise ConfigError(key, raw, "at least one value, e.g. dynamics.lr=0.01,0.02")
        parts = split_top(raw)
        if any(not p.strip() for p in parts):
            raise ConfigError(key, raw, "comma-separated values, none empty")
        grid[key] = [parse_value(p) for p in parts]
    return check_grid(grid)


def check_grid(grid: Mapping[str, Sequence] | Sequence[str]) -> dict[str, list]:
    """Validate a grid (a mapping ``key -> values`` or a list of ``key=v1,v2`` strings); return it as a dict."""
    if isinstance(grid, (list, tuple)) and all(isinstance(g, str) for g in grid):
        return parse_grid(grid)
    if not isinstance(grid, Mapping):
        raise ConfigError("grid", grid, "a mapping of dotted config keys to lists of values")
    out = {}
    for key, values in grid.items():
        _check_key(key, values)
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(key, values, "a non-empty list of values")
        values = list(values)
        canon = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(canon)) != len(canon):
            raise ConfigError(key, values, "distinct values")
        out[key] = values
    return out

