"""The named cross-field rules of a config, checked after every field has passed its own constraint.

Each rule is a small function of the whole :class:`~dlnlab.config.Config`, registered with the models it applies
to; it raises :class:`~dlnlab.errors.ConfigError` naming the field to change, or returns the config with values
resolved (a default that depends on other fields). :data:`RULES` lists them in the order they are checked.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import NamedTuple

from ..errors import ConfigError
from ._constraints import as_list
from ._sections import BUILTIN_OBSERVABLES, FIELDS, MODELS, SHARED_SECTIONS


class Rule(NamedTuple):
    name: str
    models: tuple
    check: Callable
    doc: str


RULES: list[Rule] = []


def rule(*models):
    """Register ``fn(config) -> config | None`` as the rule ``fn.__name__`` for ``models`` (default: all)."""

    def register(fn):
        RULES.append(Rule(fn.__name__, models or MODELS, fn, (fn.__doc__ or "").strip()))
        return fn

    return register


def apply_rules(c):
    """Check every rule of ``c.model`` in order; return the config with resolved values."""
    for r in RULES:
        if c.model in r.models:
            c = r.check(c) or c
    return c


def _replace(c, section: str, **values):
    return dataclasses.replace(c, **{section: dataclasses.replace(getattr(c, section), **values)})


def _given(c, key: str) -> bool:
    """Whether ``key`` differs from its default (was given)."""
    sec, name = key.split(".")
    return getattr(getattr(c, sec), name) != FIELDS[key].default


def _exactly_one(c, keys, allowed):
    given = [k for k in keys if _given(c, k)]
    if len(given) != 1:
        first = keys[0]
        sec, name = first.split(".")
        raise ConfigError(first, getattr(getattr(c, sec), name), allowed)


# ---------------------------------------------------------------------------------------------------------
# Shared sections

KINDS = {"network": ("flow", "gd", "sgd", "sde"), "modes": ("gd", "sgd", "sde"),
         "diagonal": ("flow", "gd", "sgd", "sde", "sde_log"), "relu": ("sgd",), "regression": ("flow", "gd", "sgd")}
SDE_SCHEMES = {"modes": ("em", "log", "implicit"), "diagonal": ("euler", "tamed", "tamed_sqrt")}


@rule()
def shared_keys_used_by_the_model(c):
    """A key of ``dynamics``, ``record`` or ``ensemble`` that the model does not use is omitted."""
    for key, f in FIELDS.items():
        if key.split(".")[0] in SHARED_SECTIONS and c.model not in f.models and _given(c, key):
            raise ConfigError(key, getattr(getattr(c, key.split(".")[0]), key.split(".")[1]),
                              f"omitted for the {c.model} simulator (used by: {', '.join(f.models)})")


@rule()
def dynamics_kind_of_the_model(c):
    """``dynamics.kind`` is one the model simulates."""
    kind, allowed = c.dynamics.kind, KINDS[c.model]
    if kind not in allowed:
        hint = (" (gradient flow of a mode is in closed form: dlnlab.theory.mode_flow_fn)"
                if c.model == "modes" and kind == "flow" else "")
        raise ConfigError("dynamics.kind", kind, "one of " + ", ".join(repr(k) for k in allowed)
                          + f" for the {c.model} simulator{hint}")


@rule("modes", "diagonal")
def sde_scheme(c):
    """``dynamics.scheme`` only for SDE kinds, one of the model's schemes (default ``em`` per mode; diagonal:
    ``tamed`` for ``sde_log``, ``euler`` for ``sde``)."""
    kind, scheme = c.dynamics.kind, c.dynamics.scheme
    if kind not in ("sde", "sde_log"):
        if scheme is not None:
            raise ConfigError("dynamics.scheme", scheme, "omitted unless dynamics.kind is an SDE ('sde', 'sde_log')")
        return None
    allowed = SDE_SCHEMES[c.model]
    if scheme is None:
        return _replace(c, "dynamics", scheme="tamed" if kind == "sde_log" else allowed[0])
    if scheme not in allowed:
        raise ConfigError("dynamics.scheme", scheme, "one of " + ", ".join(repr(s) for s in allowed)
                          + f" for the {c.model} simulator")
    return None


@rule()
def one_duration(c):
    """Exactly one of ``dynamics.steps``, ``dynamics.t_max`` and ``record.times`` gives the length of the run."""
    given = [k for k in ("dynamics.steps", "dynamics.t_max", "record.times") if _given(c, k)]
    if len(given) != 1:
        raise ConfigError("dynamics.steps", c.dynamics.steps,
                          "exactly one of dynamics.steps, dynamics.t_max and record.times")


@rule("network", "modes")
def steps_with_stacked_lr(c):
    """With a list of learning rates the run is given by a common ``t_max`` (or ``record.times``), not ``steps``."""
    if c.dynamics.steps is not None and isinstance(c.dynamics.lr, tuple):
        what = "for flow with a list of lr (give t_max)" if c.dynamics.kind == "flow" else \
            "when dynamics.lr is a list (give t_max: a common time axis)"
        raise ConfigError("dynamics.steps", c.dynamics.steps, f"omitted {what}")


@rule("network", "modes")
def dt_for_sde_only(c):
    """``dynamics.dt`` is the SDE time step: omitted for other kinds."""
    if c.dynamics.dt is not None and c.dynamics.kind != "sde":
        raise ConfigError("dynamics.dt", c.dynamics.dt, "omitted unless dynamics.kind = 'sde'")


@rule()
def record_times(c):
    """``record.times`` is increasing and replaces ``record.n_times``, ``spacing`` and ``t_min``."""
    times = c.record.times
    if times is None:
        return
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ConfigError("record.times", list(times), "an increasing list of times >= 0")
    for key in ("record.n_times", "record.spacing", "record.t_min"):
        if _given(c, key):
            raise ConfigError(key, getattr(c.record, key.split(".")[1]), "omitted when record.times is given")


@rule("network")
def flow_only_keys(c):
    """``dynamics.solver`` and ``dynamics.arithmetic`` are for ``dynamics.kind = 'flow'`` only."""
    for key in ("solver", "arithmetic"):
        if c.dynamics.kind != "flow" and _given(c, f"dynamics.{key}"):
            raise ConfigError(f"dynamics.{key}", getattr(c.dynamics, key), "omitted unless dynamics.kind = 'flow'")


@rule()
def auto_duration(c):
    """``dynamics.t_max = 'auto'`` (run until the loss has settled) is for the network model's flow with the
    ``auto`` or ``implicit`` solver. Its records are log-spaced by decades, ``record.per_decade`` per decade from
    ``record.t_min``, one chunk per decade: ``record.n_times``, ``spacing`` and ``chunks`` are omitted, and
    ``record.per_decade`` is for ``t_max = 'auto'`` only."""
    dy, r = c.dynamics, c.record
    if dy.t_max != "auto":
        if _given(c, "record.per_decade"):
            raise ConfigError("record.per_decade", r.per_decade, "omitted unless dynamics.t_max = 'auto'")
        return
    if c.model != "network" or dy.kind != "flow":
        raise ConfigError("dynamics.t_max", "auto", "a finite number > 0 ('auto' is for the network model's flow)")
    if dy.solver == "explicit":
        raise ConfigError("dynamics.solver", dy.solver, "'auto' or 'implicit' when dynamics.t_max = 'auto' (the "
                                                        "explicit solver runs to a given t_max)")
    for key in ("record.n_times", "record.spacing", "record.chunks"):
        if _given(c, key):
            raise ConfigError(key, getattr(r, key.split(".")[1]), "omitted when dynamics.t_max = 'auto' "
                                                                  "(record.per_decade records per decade, a chunk "
                                                                  "per decade)")


@rule()
def divergence_threshold_default(c):
    """``dynamics.divergence_threshold`` defaults to 1e30 (ReLU simulator: 1e3)."""
    if c.dynamics.divergence_threshold is None and c.model in FIELDS["dynamics.divergence_threshold"].models:
        return _replace(c, "dynamics", divergence_threshold=1e3 if c.model == "relu" else 1e30)
    return None


# ---------------------------------------------------------------------------------------------------------
# The network model


def _kmax(c):
    return min(c.teacher.d_in, c.teacher.d_out)


@rule("network")
def teacher_spectrum(c):
    """``spectrum = 'explicit'`` needs ``singular_values`` (at most min(d_in, d_out)); a family needs ``rank``
    (and no ``singular_values``); ``s_min <= s_max``."""
    t, kmax = c.teacher, _kmax(c)
    if t.spectrum == "explicit":
        if t.singular_values is None:
            raise ConfigError("teacher.singular_values", None, "a list of singular values (or spectrum = a family)")
        if len(t.singular_values) > kmax:
            raise ConfigError("teacher.singular_values", list(t.singular_values),
                              f"at most min(d_in, d_out) = {kmax} values")
    else:
        if t.singular_values is not None:
            raise ConfigError("teacher.singular_values", list(t.singular_values),
                              f"omitted when spectrum = {t.spectrum!r}")
        if t.rank is None:
            raise ConfigError("teacher.rank", None, f"an integer in [1, {kmax}] for spectrum = {t.spectrum!r}")
    if t.rank is not None and t.rank > kmax:
        raise ConfigError("teacher.rank", t.rank, f"an integer in [1, {kmax}]")
    if t.s_min is not None and t.s_min > t.s_max:
        raise ConfigError("teacher.s_min", t.s_min, f"a number in (0, s_max = {t.s_max}]")


@rule("network")
def teacher_input_variance_length(c):
    """A list of input variances has one value per input dimension."""
    lam = c.teacher.input_variance
    if isinstance(lam, tuple) and len(lam) != c.teacher.d_in:
        raise ConfigError("teacher.input_variance", list(lam), f"a number or d_in = {c.teacher.d_in} numbers")


@rule("network")
def data_kind_fields(c):
    """``n_samples`` for finite data only; ``observed_fraction`` for completion only, which has no label noise
    and unit input variance."""
    da, t = c.data, c.teacher
    if da.kind == "finite" and da.n_samples is None:
        raise ConfigError("data.n_samples", None, "an integer >= 1 when data.kind = 'finite'")
    if da.kind != "finite" and da.n_samples is not None:
        raise ConfigError("data.n_samples", da.n_samples, f"omitted when data.kind = {da.kind!r}")
    if da.kind != "completion":
        if da.observed_fraction is not None:
            raise ConfigError("data.observed_fraction", da.observed_fraction, "omitted unless data.kind = 'completion'")
        return
    if da.observed_fraction is None:
        raise ConfigError("data.observed_fraction", None, "a number in (0, 1] when data.kind = 'completion'")
    if any(x != 0.0 for x in as_list(t.label_noise)):
        raise ConfigError("teacher.label_noise", as_list(t.label_noise), "0 when data.kind = 'completion'")
    if any(x != 1.0 for x in as_list(t.input_variance)):
        raise ConfigError("teacher.input_variance", as_list(t.input_variance), "1 when data.kind = 'completion'")


@rule("network")
def whitening_needs_samples(c):
    """Whitening a finite dataset needs at least ``d_in`` samples."""
    if c.data.whiten and c.data.kind == "finite" and c.data.n_samples < c.teacher.d_in:
        raise ConfigError("data.whiten", True, f"false unless n_samples >= d_in = {c.teacher.d_in}")


@rule("network")
def width_list_length(c):
    """A list of widths has ``depth − 1`` entries."""
    w, L = c.network.width, c.network.depth
    if isinstance(w, tuple) and len(w) != L - 1:
        raise ConfigError("network.width", list(w), f"an integer or depth - 1 = {L - 1} integers")


def _layer_values(key, rows, depth, n_max):
    if len(rows) != depth:
        raise ConfigError(key, [list(r) for r in rows], f"depth = {depth} lists of per-mode values")
    if len({len(r) for r in rows}) != 1 or len(rows[0]) > n_max:
        raise ConfigError(key, [list(r) for r in rows], f"rows of equal length <= {n_max}")


@rule("network")
def init_kind_fields(c):
    """``gaussian``/``orthogonal`` need ``gamma`` or ``scale``; ``aligned`` exactly one of ``scale``, ``strength``,
    ``layer_values`` (sized to the modes the network has); ``file`` a ``path``; nothing else."""
    i, L = c.init, c.network.depth
    if i.gamma is not None and i.scale is not None:
        raise ConfigError("init.gamma", i.gamma, "omitted when init.scale is given (give γ or an explicit scale)")
    own = {"gaussian": ("gamma", "scale", "scaling"), "orthogonal": ("gamma", "scale", "scaling"),
           "aligned": ("scale", "strength", "layer_values", "hidden_basis", "scaling"), "file": ("path",)}[i.kind]
    for k in ("gamma", "strength", "layer_values", "path", "scale"):
        if k not in own and _given(c, f"init.{k}"):
            raise ConfigError(f"init.{k}", getattr(i, k), f"omitted for init.kind = {i.kind!r}")
    if i.kind in ("gaussian", "orthogonal") and i.gamma is None and i.scale is None:
        raise ConfigError("init.gamma", None, f"a number (or init.scale) for init.kind = {i.kind!r}")
    if i.kind == "file" and i.path is None:
        raise ConfigError("init.path", None, "a path to an .npz file with arrays W1..WL")
    if i.kind != "aligned":
        return
    _exactly_one(c, ("init.scale", "init.strength", "init.layer_values"),
                 "exactly one of init.scale, init.strength, init.layer_values for aligned init")
    widths = c.network.width if isinstance(c.network.width, tuple) else (c.network.width,) if L > 1 else ()
    n_aligned = min([_kmax(c), *widths])
    if i.strength is not None and len(i.strength) > n_aligned:
        raise ConfigError("init.strength", list(i.strength), f"at most {n_aligned} values (min of dims and widths)")
    if i.layer_values is not None:
        _layer_values("init.layer_values", i.layer_values, L, n_aligned)


@rule("network")
def init_scaling_needs_width(c):
    """``scaling = 'width'`` needs a hidden layer."""
    if c.network.depth == 1 and c.init.scaling == "width" and c.init.gamma is not None:
        raise ConfigError("init.scaling", "width", "'min_fan' for depth 1 (there is no hidden width)")


@rule("network")
def batch_fits_dataset(c):
    """A minibatch is at most the whole finite dataset."""
    da, dy = c.data, c.dynamics
    if da.kind == "finite" and dy.kind in ("sgd", "sde") and dy.batch_size > da.n_samples:
        raise ConfigError("dynamics.batch_size", dy.batch_size, f"an integer in [1, n_samples = {da.n_samples}]")


@rule("network")
def flow_in_float64(c):
    """Gradient flow runs in float64."""
    if c.dynamics.kind == "flow" and c.dynamics.precision != "float64":
        raise ConfigError("dynamics.precision", c.dynamics.precision, "'float64' for flow")


@rule("network")
def completion_dynamics(c):
    """Matrix completion has full-batch dynamics (``flow``, ``gd``) and no Gaussian-input noise to record."""
    if c.data.kind != "completion":
        return None
    if c.dynamics.kind not in ("flow", "gd"):
        raise ConfigError("dynamics.kind", c.dynamics.kind, "'flow' or 'gd' when data.kind = 'completion'")
    obs = c.record.observables
    if obs == BUILTIN_OBSERVABLES:  # the default list: drop what completion cannot record
        return _replace(c, "record", observables=tuple(o for o in obs if o != "noise_power"))
    if "noise_power" in obs:
        raise ConfigError("record.observables", list(obs), "no 'noise_power' when data.kind = 'completion'")
    return None


# ---------------------------------------------------------------------------------------------------------
# The per-mode model


@rule("modes")
def modes_problem(c):
    """The modes need their ``singular_values``, one ``input_variance`` per mode (or one for all), and exactly one
    start: ``m0``, ``strength`` (at most one per mode) or ``layer_values`` (``depth`` rows)."""
    m = c.modes
    if m.singular_values is None:
        raise ConfigError("modes.singular_values", None, "a list of the s_α, one per mode")
    k = len(m.singular_values)
    if isinstance(m.input_variance, tuple) and len(m.input_variance) != k:
        raise ConfigError("modes.input_variance", list(m.input_variance), f"a number or {k} numbers (one per mode)")
    _exactly_one(c, ("modes.m0", "modes.strength", "modes.layer_values"),
                 "exactly one of modes.m0, modes.strength, modes.layer_values")
    if m.strength is not None and len(m.strength) > k:
        raise ConfigError("modes.strength", list(m.strength), f"at most {k} values (one per mode)")
    if m.layer_values is not None:
        _layer_values("modes.layer_values", m.layer_values, m.depth, k)


@rule("modes")
def modes_sde_noise(c):
    """The per-mode SDEs have the exact noise ``D(m)`` or its label-noise part."""
    if c.dynamics.kind == "sde" and c.dynamics.noise not in ("exact", "label"):
        raise ConfigError("dynamics.noise", c.dynamics.noise, "'exact' or 'label' for per-mode SDEs")


@rule("modes")
def modes_log_needs_positive_start(c):
    """The log-coordinate schemes (``log``, ``implicit``) need every per-layer value ``a_{l,α} > 0``."""
    m = c.modes
    if c.dynamics.scheme not in ("log", "implicit"):
        return
    k = len(m.singular_values)
    if m.m0 is not None:
        key, ok = "modes.m0", min(as_list(m.m0)) > 0
    elif m.strength is not None:
        key, ok = "modes.strength", len(m.strength) == k and min(m.strength) > 0
    else:
        key, ok = "modes.layer_values", len(m.layer_values[0]) == k and min(min(r) for r in m.layer_values) > 0
    if not ok:
        raise ConfigError(key, getattr(m, key.split(".")[1]), f"positive values for each of the {k} modes "
                                                              f"(scheme {c.dynamics.scheme!r}: log coordinates)")


# ---------------------------------------------------------------------------------------------------------
# The diagonal and ReLU models


@rule("diagonal")
def diagonal_dynamics(c):
    """``sde_log`` needs ``depth >= 2``; isotropic noise is for ``sde``; ``dt`` is the step of ``flow`` and the SDEs;
    a list of ``lr`` (one step grid for all replicas) needs an SDE kind or flow with ``dt``."""
    dy, dg = c.dynamics, c.diagonal
    if dy.kind == "sde_log" and dg.depth < 2:
        raise ConfigError("diagonal.depth", dg.depth, "an integer >= 2 for sde_log (use dynamics.kind = 'sde' at 1)")
    if dy.noise == "label" or (dy.noise == "isotropic" and dy.kind != "sde"):
        raise ConfigError("dynamics.noise", dy.noise, "'exact', or 'isotropic' with dynamics.kind = 'sde'")
    if dy.dt is not None and dy.kind in ("gd", "sgd"):
        raise ConfigError("dynamics.dt", dy.dt, "omitted for gd and sgd (their step is lr)")
    if isinstance(dy.lr, tuple) and dy.kind in ("gd", "sgd"):
        raise ConfigError("dynamics.lr", list(dy.lr), "one number for gd and sgd (a list needs an SDE kind and dt)")
    if isinstance(dy.lr, tuple) and dy.dt is None:
        raise ConfigError("dynamics.dt", None, "a time step when dynamics.lr is a list (one step grid)")


@rule("diagonal")
def diagonal_start(c):
    """At most one of ``v0`` (``n_paths`` values) and ``init_scale``; ``sde_log`` starts from balanced paths
    (``v0``)."""
    dg = c.diagonal
    if dg.v0 is not None and dg.init_scale is not None:
        raise ConfigError("diagonal.init_scale", dg.init_scale, "omitted when diagonal.v0 is given")
    if dg.v0 is not None and len(dg.v0) != dg.n_paths:
        raise ConfigError("diagonal.v0", list(dg.v0), f"n_paths = {dg.n_paths} values")
    if dg.init_scale is not None and c.dynamics.kind == "sde_log":
        raise ConfigError("diagonal.init_scale", dg.init_scale, "omitted for sde_log (balanced paths: give v0)")


@rule("relu")
def relu_sgd(c):
    """One learning rate; ``n_mc`` a multiple of 100 (the noise statistics are accumulated by 100 samples)."""
    if isinstance(c.dynamics.lr, tuple):
        raise ConfigError("dynamics.lr", list(c.dynamics.lr), "one number for the relu simulator")
    if c.relu.n_mc % 100:
        raise ConfigError("relu.n_mc", c.relu.n_mc, "a multiple of 100")


@rule("regression")
def regression_task(c):
    """``sparsity <= d``; a list of ``target`` values has ``sparsity`` entries; ``kind = 'product'`` has depth 2;
    one learning rate; an SGD minibatch is at most the ``n_samples`` rows."""
    r, dy = c.regression, c.dynamics
    if r.sparsity > r.d:
        raise ConfigError("regression.sparsity", r.sparsity, f"an integer in [1, d = {r.d}]")
    if isinstance(r.target, tuple) and len(r.target) != r.sparsity:
        raise ConfigError("regression.target", list(r.target), f"a number or sparsity = {r.sparsity} numbers")
    if r.kind == "product" and r.depth != 2:
        raise ConfigError("regression.depth", r.depth, "2 for kind = 'product' (β = u ⊙ v; use kind = 'power')")
    if isinstance(dy.lr, tuple):
        raise ConfigError("dynamics.lr", list(dy.lr), "one number for the regression simulator (stack init_scale)")
    if dy.kind == "sgd" and dy.batch_size > r.n_samples:
        raise ConfigError("dynamics.batch_size", dy.batch_size, f"an integer in [1, n_samples = {r.n_samples}]")
