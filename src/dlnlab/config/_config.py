"""The :class:`Config`: typed sections, checked field by field against :data:`~._sections.FIELDS` and then by the
named rules of :mod:`._rules` — the one place where a config is validated."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import _sections as schema
from ._rules import apply_rules
from ._sections import FIELDS, MODEL_SECTIONS, SECTIONS, SHARED_SECTIONS, STACKABLE


def _section(name: str, values) -> Any:
    """Section ``name`` from a table of values, each checked against its field's constraint."""
    if not isinstance(values, dict):
        raise ConfigError(name, values, "a table of keys")
    cls = SECTIONS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}", value, f"a key among {', '.join(sorted(known))}")
        f = FIELDS[f"{name}.{key}"]
        out[key] = None if value is None and f.default is None else f.constraint.check(f.key, value)
    return cls(**out)


def _model_of(sections) -> str:
    models = [m for m, secs in MODEL_SECTIONS.items() if any(s in sections for s in secs)]
    if len(models) > 1:
        extra = next(s for s in sections if s in MODEL_SECTIONS[models[1]])
        raise ConfigError(extra, sections[extra], f"omitted beside the sections of the {models[0]} model "
                                                  "(a config describes one simulator)")
    return models[0] if models else "network"


@dataclass(frozen=True)
class Config:
    """A validated run configuration. Build with :meth:`from_dict`, :meth:`of` or :func:`load_config`.

    ``model`` says which simulator it describes: ``"network"`` (sections ``teacher``, ``data``, ``network``,
    ``init``), ``"modes"``, ``"diagonal"``, ``"relu"`` or ``"regression"`` (the section of that name);
    ``dynamics``, ``record`` and ``ensemble`` are shared."""

    teacher: schema.TeacherConfig = field(default_factory=schema.TeacherConfig)
    data: schema.DataConfig = field(default_factory=schema.DataConfig)
    network: schema.NetworkConfig = field(default_factory=schema.NetworkConfig)
    init: schema.InitConfig = field(default_factory=schema.InitConfig)
    dynamics: schema.DynamicsConfig = field(default_factory=schema.DynamicsConfig)
    record: schema.RecordConfig = field(default_factory=schema.RecordConfig)
    ensemble: schema.EnsembleConfig = field(default_factory=schema.EnsembleConfig)
    modes: schema.ModesConfig | None = None
    diagonal: schema.DiagonalConfig | None = None
    relu: schema.ReluConfig | None = None
    regression: schema.RegressionConfig | None = None

    @property
    def model(self) -> str:
        """The simulator this config describes: ``network``, ``modes``, ``diagonal``, ``relu`` or ``regression``."""
        for name in ("modes", "diagonal", "relu", "regression"):
            if getattr(self, name) is not None:
                return name
        return "network"

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        if not isinstance(d, dict):
            raise ConfigError("<config>", d, "a table of sections")
        for key, val in d.items():
            if key not in SECTIONS:
                raise ConfigError(key, val, "a section among " + ", ".join(SECTIONS))
        model = _model_of(d)
        sections = {name: _section(name, d.get(name, {})) for name in (*MODEL_SECTIONS[model], *SHARED_SECTIONS)}
        return apply_rules(cls(**sections))

    @classmethod
    def of(cls, model: str = "network", **keys) -> Config:
        """A config from keyword arguments named as the config keys of ``model`` (``Config.of("diagonal", depth=2,
        kind="sgd", lr=0.05, steps=100)``); a name used by two sections (``seed``, ``kind`` of the network model)
        is given dotted (``**{"teacher.seed": 1}``). ``None`` means "not given"; NumPy values are accepted."""
        names = _flat_names(model)
        d: dict = {sec: {} for sec in MODEL_SECTIONS[model]}
        for name, value in keys.items():
            if value is None:
                continue
            dotted = name if "." in name else names.get(name)
            if dotted not in FIELDS or dotted.split(".")[0] not in (*MODEL_SECTIONS[model], *SHARED_SECTIONS):
                raise ConfigError(name, value, f"a key of the {model} model: " + ", ".join(sorted(names)))
            sec, key = dotted.split(".")
            d.setdefault(sec, {})[key] = _plain(value)
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        """Plain nested dict of the model's sections and the keys it uses (TOML-serialisable: ``None`` dropped)."""
        out = {}
        for name in (*MODEL_SECTIONS[self.model], *SHARED_SECTIONS):
            sec = getattr(self, name)
            out[name] = {f.name: _plain(getattr(sec, f.name)) for f in dataclasses.fields(sec)
                         if getattr(sec, f.name) is not None and self.model in FIELDS[f"{name}.{f.name}"].models}
        return out

    # -- derived quantities -------------------------------------------------------------------------------

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        w = self.network.width
        return tuple(w) if isinstance(w, (list, tuple)) else (w,) * (self.network.depth - 1)

    @property
    def layer_dims(self) -> tuple[int, ...]:
        """``(d_0, d_1, …, d_L)``."""
        return (self.teacher.d_in, *self.hidden_widths, self.teacher.d_out)

    @property
    def n_modes(self) -> int:
        """Number of teacher modes: ``min(d_in, d_out)`` (network), the number of ``modes.singular_values``."""
        if self.model == "modes":
            return len(self.modes.singular_values)
        return min(self.teacher.d_in, self.teacher.d_out)

    def stacked(self) -> dict[str, list]:
        """The stacked hyper-parameters: dotted name -> list of values (only those given as lists)."""
        out = {}
        for name in STACKABLE:
            sec, key = name.split(".")
            section = getattr(self, sec)
            v = None if section is None else getattr(section, key)
            if isinstance(v, (list, tuple)):
                out[name] = list(v)
        return out

    def replica_grid(self) -> list[dict]:
        """One dict per replica: stacked values and ``member`` (the index of its random stream: the seed index
        within its combination, or with ``ensemble.common_random_numbers = false`` the replica index)."""
        stacked = self.stacked()
        names = list(stacked)
        rows = []
        for combo in itertools.product(*(stacked[n] for n in names)):
            for member in range(self.ensemble.replicas):
                rows.append({**dict(zip(names, combo)), "member": member})
        if not self.ensemble.common_random_numbers:
            rows = [{**row, "member": r} for r, row in enumerate(rows)]
        return rows

    def with_overrides(self, overrides: list[str]) -> Config:
        from ._io import apply_overrides

        return Config.from_dict(apply_overrides(self.to_dict(), overrides))

    def with_times(self, times) -> Config:
        """The same run recorded at ``times`` (``record.times``; the run ends at the last one): ``dynamics.steps``,
        ``t_max`` and ``record.n_times``, ``spacing``, ``t_min`` are dropped."""
        d = self.to_dict()
        for sec, key in (("dynamics", "steps"), ("dynamics", "t_max"), ("record", "n_times"), ("record", "spacing"),
                         ("record", "t_min")):
            d[sec].pop(key, None)
        d["record"]["times"] = _plain(times)
        return Config.from_dict(d)


def _flat_names(model: str) -> dict[str, str]:
    """Undotted key name -> dotted key, over the sections of ``model`` and the shared keys it uses (names used by
    two sections left out)."""
    counts: dict[str, list[str]] = {}
    for key, f in FIELDS.items():
        sec, name = key.split(".")
        if sec in MODEL_SECTIONS[model] or (sec in SHARED_SECTIONS and model in f.models):
            counts.setdefault(name, []).append(key)
    return {name: keys[0] for name, keys in counts.items() if len(keys) == 1}


def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v
