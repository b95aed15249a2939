"""Run configuration: typed sections, defaults, and *all* validation in one place.

A config is a nested mapping (TOML on disk) with the sections ``teacher``, ``data``, ``network``, ``init``,
``dynamics``, ``record`` and ``ensemble``. ``Config.from_dict`` checks every key and value and raises
:class:`ConfigError` naming the field, the value and what is allowed. Nothing else in the library validates
user input.

Hyper-parameters that keep array shapes may be given as lists and are *stacked* on the replica axis (the
product of all lists, each combination with ``ensemble.replicas`` seeds): ``dynamics.lr``,
``teacher.label_noise``, ``init.scale`` and ``init.gamma``.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACKABLE = ("dynamics.lr", "teacher.label_noise", "init.scale", "init.gamma")
BUILTIN_OBSERVABLES = (
    "loss",
    "singular_values",
    "mode_strength",
    "off_diagonal",
    "balancedness",
    "layer_norm",
    "grad_norm",
    "noise_power",
    "effective_rank",
)
#: Built-in observables recorded only on request (not in the default list): full d_out × d_in matrices.
OPTIONAL_OBSERVABLES = ("end_to_end", "residual")


class ConfigError(ValueError):
    """An invalid configuration value: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"invalid config: {field} = {value!r}; allowed: {allowed}")


# ---------------------------------------------------------------------------------------------------------
# Field coercion helpers (each raises ConfigError with the dotted field name)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(name, v, lo=None, hi=None):
    if not isinstance(v, int) or isinstance(v, bool):
        raise ConfigError(name, v, "an integer" + (f" >= {lo}" if lo is not None else ""))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(name, v, f"an integer {rng}")
    return v


def _isfinite(v):
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond the float range
        return False


def _float(name, v, positive=False, nonneg=False):
    if not _is_num(v) or not _isfinite(v):
        raise ConfigError(name, v, "a finite number")
    if positive and not v > 0:
        raise ConfigError(name, v, "a finite number > 0")
    if nonneg and not v >= 0:
        raise ConfigError(name, v, "a finite number >= 0")
    return float(v)


def _floats(name, v, positive=False, nonneg=False, min_len=1):
    if not isinstance(v, (list, tuple)) or len(v) < min_len:
        raise ConfigError(name, v, f"a list of at least {min_len} numbers")
    return tuple(_float(f"{name}[{i}]", x, positive, nonneg) for i, x in enumerate(v))


def _float_or_list(name, v, positive=False, nonneg=False):
    """A number, or (stacked on the replica axis) a non-empty list of numbers."""
    if isinstance(v, (list, tuple)):
        return _floats(name, v, positive, nonneg)
    return _float(name, v, positive, nonneg)


def _choice(name, v, choices):
    if v not in choices:
        raise ConfigError(name, v, "one of " + ", ".join(repr(c) for c in choices))
    return v


def _bool(name, v):
    if not isinstance(v, bool):
        raise ConfigError(name, v, "true or false")
    return v


def _str(name, v):
    if not isinstance(v, str) or not v:
        raise ConfigError(name, v, "a non-empty string")
    return v


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


# ---------------------------------------------------------------------------------------------------------
# Sections. Constructors only store; ``_validate`` of ``Config`` checks everything.


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher ``M = Σ s_α u_α v_αᵀ``, inputs ``x ~ N(0, V diag(λ) Vᵀ)``, labels ``y = Mx + ε``."""

    d_in: int = 10
    d_out: int = 10
    singular_values: tuple | None = None  # explicit s_α (at most min(d_in, d_out))
    spectrum: str = "explicit"  # explicit | power | geometric | linear
    rank: int | None = None  # number of non-zero s_α for a family
    s_max: float = 1.0
    exponent: float = 1.0  # power law s_i = s_max i^-exponent
    ratio: float = 0.5  # geometric s_i = s_max ratio^(i-1)
    s_min: float | None = None  # linear from s_max down to s_min
    input_variance: Any = 1.0  # λ along the columns of V: a number or d_in numbers
    label_noise: Any = 0.0  # σ_ε (stackable)
    basis: str = "random"  # random | identity
    seed: int = 0  # seed of U and V


@dataclass(frozen=True)
class DataConfig:
    """Online (fresh samples every step), a finite dataset of ``n_samples``, or matrix completion: the training
    objective is ``½ Σ_{(i,j)∈Ω} (W − M)_ij²`` over a random set Ω of observed entries of the teacher ``M``
    (``observed_fraction`` of them, drawn with ``seed``); ``loss`` stays the full-matrix error ``½‖W − M‖²_F``."""

    kind: str = "online"  # online | finite | completion
    n_samples: int | None = None
    observed_fraction: float | None = None  # completion: fraction of the entries of M observed
    whiten: bool = False  # make the empirical input covariance exactly V diag(λ) Vᵀ
    sampling: str = "without_replacement"  # finite-data SGD: with_replacement | without_replacement
    seed: int = 0


@dataclass(frozen=True)
class NetworkConfig:
    depth: int = 3  # L = number of weight matrices
    width: Any = 20  # hidden width w, or a list of depth-1 widths


@dataclass(frozen=True)
class InitConfig:
    kind: str = "gaussian"  # gaussian | aligned | orthogonal | file
    gamma: Any = None  # σ² = w^-γ (stackable)
    scale: Any = None  # explicit σ (gaussian/orthogonal) or m0 of every mode (aligned) (stackable)
    scaling: str = "width"  # width: w = largest hidden width | min_fan: per layer min(d_l, d_{l-1})
    strength: tuple | None = None  # aligned: per-mode m_α(0)
    layer_values: tuple | None = None  # aligned unbalanced: depth rows of per-mode a_{l,α}
    hidden_basis: str = "random"  # aligned: random | identity hidden bases
    path: str | None = None  # file: .npz with arrays W1..WL


@dataclass(frozen=True)
class DynamicsConfig:
    kind: str = "sgd"  # flow | gd | sgd | sde
    lr: Any = 0.01  # η (stackable)
    batch_size: int = 1
    steps: int | None = None
    t_max: float | None = None
    noise: str = "exact"  # sde: exact | label | isotropic
    dt: float | None = None  # sde time step (default η)
    isotropic_scale: float = 1.0  # sde isotropic noise: Σ = c² I
    rtol: float = 1e-10  # flow
    atol: float | None = None  # flow (default rtol·1e-3·max|θ0|)
    precision: str = "float64"  # float64 | float32
    divergence_threshold: float = 1e30  # a replica with any |weight| above this is frozen and marked diverged


@dataclass(frozen=True)
class RecordConfig:
    n_times: int = 200
    spacing: str = "log"  # log | linear
    t_min: float | None = None  # first time after 0 (log spacing); default one step (flow: 1e-6 t_max)
    observables: tuple = BUILTIN_OBSERVABLES
    chunks: int = 10  # compiled chunks (progress, interrupt and checkpoint granularity)


@dataclass(frozen=True)
class EnsembleConfig:
    replicas: int = 1  # seeds per stacked hyper-parameter combination
    seed: int = 0


SECTIONS = {
    "teacher": TeacherConfig,
    "data": DataConfig,
    "network": NetworkConfig,
    "init": InitConfig,
    "dynamics": DynamicsConfig,
    "record": RecordConfig,
    "ensemble": EnsembleConfig,
}


@dataclass(frozen=True)
class Config:
    """A validated run configuration. Build with :meth:`from_dict` or :func:`load_config`."""

    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    init: InitConfig = field(default_factory=InitConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        if not isinstance(d, dict):
            raise ConfigError("<config>", d, "a table of sections")
        sections = {}
        for key, val in d.items():
            if key not in SECTIONS:
                raise ConfigError(key, val, "a section among " + ", ".join(SECTIONS))
            if not isinstance(val, dict):
                raise ConfigError(key, val, "a table of keys")
            known = {f.name for f in dataclasses.fields(SECTIONS[key])}
            for k in val:
                if k not in known:
                    raise ConfigError(f"{key}.{k}", val[k], f"a key among {', '.join(sorted(known))}")
            sections[key] = SECTIONS[key](**val)
        return _validate(cls(**sections))

    def to_dict(self) -> dict:
        """Plain nested dict (TOML-serialisable: ``None`` fields are dropped)."""
        out = {}
        for name in SECTIONS:
            sec = dataclasses.asdict(getattr(self, name))
            out[name] = {k: _plain(v) for k, v in sec.items() if v is not None}
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
        """Number of teacher modes, ``min(d_in, d_out)``."""
        return min(self.teacher.d_in, self.teacher.d_out)

    def stacked(self) -> dict[str, list]:
        """The stacked hyper-parameters: dotted name -> list of values (only those given as lists)."""
        out = {}
        for name in STACKABLE:
            sec, key = name.split(".")
            v = getattr(getattr(self, sec), key)
            if isinstance(v, (list, tuple)):
                out[name] = list(v)
        return out

    def replica_grid(self) -> list[dict]:
        """One dict per replica: stacked values and ``member`` (seed index within its combination)."""
        stacked = self.stacked()
        names = list(stacked)
        rows = []
        for combo in itertools.product(*(stacked[n] for n in names)):
            for member in range(self.ensemble.replicas):
                rows.append({**dict(zip(names, combo)), "member": member})
        return rows

    def with_overrides(self, overrides: list[str]) -> Config:
        return Config.from_dict(apply_overrides(self.to_dict(), overrides))


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _validate(c: Config) -> Config:
    """Check every field and their consistency; return the config with normalised values."""
    t, da, n, i, dy, r, e = c.teacher, c.data, c.network, c.init, c.dynamics, c.record, c.ensemble
    # teacher
    _int("teacher.d_in", t.d_in, 1)
    _int("teacher.d_out", t.d_out, 1)
    kmax = min(t.d_in, t.d_out)
    _choice("teacher.spectrum", t.spectrum, ("explicit", "power", "geometric", "linear"))
    sv = None
    if t.spectrum == "explicit":
        if t.singular_values is None:
            raise ConfigError("teacher.singular_values", None, "a list of singular values (or spectrum = a family)")
        sv = _floats("teacher.singular_values", t.singular_values, nonneg=True)
        if len(sv) > kmax:
            raise ConfigError("teacher.singular_values", list(sv), f"at most min(d_in, d_out) = {kmax} values")
    else:
        if t.singular_values is not None:
            raise ConfigError("teacher.singular_values", t.singular_values, f"omitted when spectrum = {t.spectrum!r}")
        if t.rank is None:
            raise ConfigError("teacher.rank", None, f"an integer in [1, {kmax}] for spectrum = {t.spectrum!r}")
    # family parameters are checked whatever the spectrum, so that a bad value never passes silently
    if t.rank is not None:
        _int("teacher.rank", t.rank, 1, kmax)
    _float("teacher.s_max", t.s_max, positive=True)
    _float("teacher.exponent", t.exponent, nonneg=True)
    _float("teacher.ratio", t.ratio, positive=True)
    if t.s_min is not None:
        _float("teacher.s_min", t.s_min, positive=True)
        if t.s_min > t.s_max:
            raise ConfigError("teacher.s_min", t.s_min, f"a number in (0, s_max = {t.s_max}]")
    lam = t.input_variance
    if isinstance(lam, (list, tuple)):
        lam = _floats("teacher.input_variance", lam, positive=True)
        if len(lam) != t.d_in:
            raise ConfigError("teacher.input_variance", list(lam), f"a number or d_in = {t.d_in} numbers")
    else:
        lam = _float("teacher.input_variance", lam, positive=True)
    noise = _float_or_list("teacher.label_noise", t.label_noise, nonneg=True)
    _choice("teacher.basis", t.basis, ("random", "identity"))
    _int("teacher.seed", t.seed, 0)
    t = dataclasses.replace(t, singular_values=sv, input_variance=lam, label_noise=noise)
    # data
    _choice("data.kind", da.kind, ("online", "finite", "completion"))
    if da.kind == "finite":
        if da.n_samples is None:
            raise ConfigError("data.n_samples", None, "an integer >= 1 when data.kind = 'finite'")
        _int("data.n_samples", da.n_samples, 1)
    elif da.n_samples is not None:
        raise ConfigError("data.n_samples", da.n_samples, f"omitted when data.kind = {da.kind!r}")
    if da.kind == "completion":
        frac = da.observed_fraction
        if not _is_num(frac) or not _isfinite(frac) or not 0 < frac <= 1:
            raise ConfigError("data.observed_fraction", frac, "a number in (0, 1] when data.kind = 'completion'")
        if any(x != 0.0 for x in (noise if isinstance(noise, tuple) else (noise,))):
            raise ConfigError("teacher.label_noise", _plain(noise), "0 when data.kind = 'completion'")
        if any(x != 1.0 for x in (lam if isinstance(lam, tuple) else (lam,))):
            raise ConfigError("teacher.input_variance", _plain(lam), "1 when data.kind = 'completion'")
    elif da.observed_fraction is not None:
        raise ConfigError("data.observed_fraction", da.observed_fraction, "omitted unless data.kind = 'completion'")
    _bool("data.whiten", da.whiten)
    if da.whiten and da.kind == "finite" and da.n_samples < t.d_in:
        raise ConfigError("data.whiten", True, f"false unless n_samples >= d_in = {t.d_in}")
    _choice("data.sampling", da.sampling, ("with_replacement", "without_replacement"))
    _int("data.seed", da.seed, 0)
    # network
    _int("network.depth", n.depth, 1)
    w = n.width
    if isinstance(w, (list, tuple)):
        if len(w) != n.depth - 1:
            raise ConfigError("network.width", list(w), f"an integer or depth - 1 = {n.depth - 1} integers")
        w = tuple(_int(f"network.width[{k}]", x, 1) for k, x in enumerate(w))
    else:
        w = _int("network.width", w, 1)
    n = dataclasses.replace(n, width=w)
    # init
    _choice("init.kind", i.kind, ("gaussian", "aligned", "orthogonal", "file"))
    _choice("init.scaling", i.scaling, ("width", "min_fan"))
    _choice("init.hidden_basis", i.hidden_basis, ("random", "identity"))
    if i.gamma is not None and i.scale is not None:
        raise ConfigError("init.gamma", i.gamma, "omitted when init.scale is given (give γ or an explicit scale)")
    gamma = None if i.gamma is None else _float_or_list("init.gamma", i.gamma)
    scale = None if i.scale is None else _float_or_list("init.scale", i.scale, nonneg=True)
    strength = layer_values = None
    widths = w if isinstance(w, tuple) else (w,) if n.depth > 1 else ()  # distinct widths (depth may be huge)
    n_aligned = min([kmax, *widths])
    if i.kind in ("gaussian", "orthogonal"):
        if gamma is None and scale is None:
            raise ConfigError("init.gamma", None, f"a number (or init.scale) for init.kind = {i.kind!r}")
        for k in ("strength", "layer_values", "path"):
            if getattr(i, k) is not None:
                raise ConfigError(f"init.{k}", getattr(i, k), f"omitted for init.kind = {i.kind!r}")
    elif i.kind == "aligned":
        if gamma is not None:
            raise ConfigError("init.gamma", gamma, "omitted for init.kind = 'aligned' (give scale, strength or layer_values)")
        given = [k for k in ("scale", "strength", "layer_values") if getattr(i, k) is not None]
        if len(given) != 1:
            raise ConfigError("init.scale", i.scale, "exactly one of init.scale, init.strength, init.layer_values for aligned init")
        if i.strength is not None:
            strength = _floats("init.strength", i.strength, nonneg=True)
            if len(strength) > n_aligned:
                raise ConfigError("init.strength", list(strength), f"at most {n_aligned} values (min of dims and widths)")
        if i.layer_values is not None:
            rows = i.layer_values
            if not isinstance(rows, (list, tuple)) or len(rows) != n.depth:
                raise ConfigError("init.layer_values", rows, f"depth = {n.depth} lists of per-mode values")
            layer_values = tuple(_floats(f"init.layer_values[{k}]", row) for k, row in enumerate(rows))
            if len({len(row) for row in layer_values}) != 1 or len(layer_values[0]) > n_aligned:
                raise ConfigError("init.layer_values", rows, f"rows of equal length <= {n_aligned}")
        if i.path is not None:
            raise ConfigError("init.path", i.path, "omitted for init.kind = 'aligned'")
    else:  # file
        if i.path is None:
            raise ConfigError("init.path", None, "a path to an .npz file with arrays W1..WL")
        _str("init.path", i.path)
        for k in ("gamma", "scale", "strength", "layer_values"):
            if getattr(i, k) is not None:
                raise ConfigError(f"init.{k}", getattr(i, k), "omitted for init.kind = 'file'")
    if n.depth == 1 and i.scaling == "width" and gamma is not None:
        raise ConfigError("init.scaling", "width", "'min_fan' for depth 1 (there is no hidden width)")
    i = dataclasses.replace(i, gamma=gamma, scale=scale, strength=strength, layer_values=layer_values)
    # dynamics
    _choice("dynamics.kind", dy.kind, ("flow", "gd", "sgd", "sde"))
    lr = _float_or_list("dynamics.lr", dy.lr, positive=True)
    _int("dynamics.batch_size", dy.batch_size, 1)
    if da.kind == "finite" and dy.kind in ("sgd", "sde") and dy.batch_size > da.n_samples:
        raise ConfigError("dynamics.batch_size", dy.batch_size, f"an integer in [1, n_samples = {da.n_samples}]")
    if (dy.steps is None) == (dy.t_max is None):
        raise ConfigError("dynamics.steps", dy.steps, "exactly one of dynamics.steps and dynamics.t_max")
    if dy.steps is not None:
        _int("dynamics.steps", dy.steps, 1)
        if isinstance(lr, tuple) and dy.kind != "flow":
            raise ConfigError("dynamics.steps", dy.steps, "omitted when dynamics.lr is a list (give t_max: a common time axis)")
        if dy.kind == "flow" and isinstance(lr, tuple):
            raise ConfigError("dynamics.steps", dy.steps, "omitted for flow with a list of lr (give t_max)")
    t_max = None if dy.t_max is None else _float("dynamics.t_max", dy.t_max, positive=True)
    _choice("dynamics.noise", dy.noise, ("exact", "label", "isotropic"))
    dt = None if dy.dt is None else _float("dynamics.dt", dy.dt, positive=True)
    if dt is not None and dy.kind != "sde":
        raise ConfigError("dynamics.dt", dt, "omitted unless dynamics.kind = 'sde'")
    _float("dynamics.isotropic_scale", dy.isotropic_scale, nonneg=True)
    _float("dynamics.rtol", dy.rtol, positive=True)
    atol = None if dy.atol is None else _float("dynamics.atol", dy.atol, positive=True)
    _choice("dynamics.precision", dy.precision, ("float64", "float32"))
    _float("dynamics.divergence_threshold", dy.divergence_threshold, positive=True)
    if dy.kind == "flow" and dy.precision != "float64":
        raise ConfigError("dynamics.precision", dy.precision, "'float64' for flow")
    dy = dataclasses.replace(dy, lr=lr, t_max=t_max, dt=dt, atol=atol)
    # record
    _int("record.n_times", r.n_times, 2)
    _choice("record.spacing", r.spacing, ("log", "linear"))
    t_min = None if r.t_min is None else _float("record.t_min", r.t_min, positive=True)
    obs = r.observables
    if not isinstance(obs, (list, tuple)):
        raise ConfigError("record.observables", obs,
                          "a list of names among " + ", ".join(BUILTIN_OBSERVABLES + OPTIONAL_OBSERVABLES))
    for k, name in enumerate(obs):
        _choice(f"record.observables[{k}]", name, BUILTIN_OBSERVABLES + OPTIONAL_OBSERVABLES)
    _int("record.chunks", r.chunks, 1)
    r = dataclasses.replace(r, t_min=t_min, observables=tuple(obs))
    if da.kind == "completion":  # the masked objective has full-batch dynamics and no Gaussian-input noise
        if dy.kind not in ("flow", "gd"):
            raise ConfigError("dynamics.kind", dy.kind, "'flow' or 'gd' when data.kind = 'completion'")
        if tuple(obs) == BUILTIN_OBSERVABLES:  # the default list: drop what completion cannot record
            r = dataclasses.replace(r, observables=tuple(o for o in obs if o != "noise_power"))
        elif "noise_power" in obs:
            raise ConfigError("record.observables", list(obs), "no 'noise_power' when data.kind = 'completion'")
    # ensemble
    _int("ensemble.replicas", e.replicas, 1)
    _int("ensemble.seed", e.seed, 0)
    return Config(t, da, n, i, dy, r, e)


# ---------------------------------------------------------------------------------------------------------
# Loading and overrides


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
