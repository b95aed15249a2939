"""Config validation (every bad value -> ConfigError naming its dotted field), spectrum families, ``--set``
parsing, round trips and the stacking grid. No simulation here: the whole module runs in a few seconds."""

from __future__ import annotations

import copy
import itertools
import math
import tomllib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlnlab import Config, ConfigError, Teacher, load_config
from dlnlab.config import SECTIONS, apply_overrides, config_to_toml, parse_override

BASE = {
    "teacher": {"d_in": 3, "d_out": 2, "singular_values": [1.0, 0.5]},
    "network": {"depth": 2, "width": 4},
    "init": {"kind": "gaussian", "gamma": 1.5},
    "dynamics": {"kind": "sgd", "lr": 0.01, "steps": 10},
}

DROP = object()  # marks a key to remove from BASE


def make(**changes):
    """BASE with ``section__key=value`` changes (``DROP`` removes the key; a whole section by its name)."""
    d = copy.deepcopy(BASE)
    for name, value in changes.items():
        if "__" not in name:
            d[name] = value
            continue
        sec, key = name.split("__")
        d.setdefault(sec, {})
        if value is DROP:
            d[sec].pop(key, None)
        else:
            d[sec][key] = value
    return d


def test_base_is_valid():
    c = Config.from_dict(make())
    assert c.layer_dims == (3, 4, 2)


# (id, dict, expected ConfigError.field)
INVALID = [
    ("lr zero", make(dynamics__lr=0.0), "dynamics.lr"),
    ("lr negative", make(dynamics__lr=-0.01), "dynamics.lr"),
    ("lr nan", make(dynamics__lr=math.nan), "dynamics.lr"),
    ("lr inf", make(dynamics__lr=math.inf), "dynamics.lr"),
    ("lr list with a negative", make(dynamics__lr=[0.01, -1.0], dynamics__steps=DROP, dynamics__t_max=1.0),
     "dynamics.lr[1]"),
    ("lr list with inf", make(dynamics__lr=[math.inf], dynamics__steps=DROP, dynamics__t_max=1.0), "dynamics.lr[0]"),
    ("lr empty list", make(dynamics__lr=[], dynamics__steps=DROP, dynamics__t_max=1.0), "dynamics.lr"),
    ("batch_size zero", make(dynamics__batch_size=0), "dynamics.batch_size"),
    ("batch_size negative", make(dynamics__batch_size=-3), "dynamics.batch_size"),
    ("batch_size > n_samples", make(data={"kind": "finite", "n_samples": 4}, dynamics__batch_size=5),
     "dynamics.batch_size"),
    ("depth zero", make(network__depth=0), "network.depth"),
    ("width zero", make(network__width=0), "network.width"),
    ("width entry zero", make(network__depth=3, network__width=[4, 0]), "network.width[1]"),
    ("unknown section", make(optimizer={"kind": "adam"}), "optimizer"),
    ("section not a table", make(record=5), "record"),
    ("unknown key", make(dynamics__learning_rate=0.01), "dynamics.learning_rate"),
    ("string for int", make(network__depth="3"), "network.depth"),
    ("float for int", make(ensemble={"replicas": 2.0}), "ensemble.replicas"),
    ("bool for int", make(ensemble={"replicas": True}), "ensemble.replicas"),
    ("bool for number", make(dynamics__lr=True), "dynamics.lr"),
    ("string for number", make(teacher__label_noise="0.1"), "teacher.label_noise"),
    ("width list too short", make(network__depth=3, network__width=[4]), "network.width"),
    ("width list too long", make(network__width=[4, 4]), "network.width"),
    ("too many singular values", make(teacher__singular_values=[1.0, 0.5, 0.2]), "teacher.singular_values"),
    ("negative singular value", make(teacher__singular_values=[1.0, -0.5]), "teacher.singular_values[1]"),
    ("gamma and scale", make(init__scale=0.1), "init.gamma"),
    ("neither steps nor t_max", make(dynamics__steps=DROP), "dynamics.steps"),
    ("both steps and t_max", make(dynamics__t_max=1.0), "dynamics.steps"),
    ("steps with stacked lr", make(dynamics__lr=[0.01, 0.02]), "dynamics.steps"),
    ("input_variance wrong length", make(teacher__input_variance=[1.0, 2.0]), "teacher.input_variance"),
    ("input_variance non-positive", make(teacher__input_variance=0.0), "teacher.input_variance"),
    ("unknown observable", make(record={"observables": ["loss", "bogus"]}), "record.observables[1]"),
    ("observables not a list", make(record={"observables": "loss"}), "record.observables"),
    ("spectrum family without rank",
     make(teacher__singular_values=DROP, teacher__spectrum="power"), "teacher.rank"),
    ("rank above min(d_in, d_out)",
     make(teacher__singular_values=DROP, teacher__spectrum="geometric", teacher__rank=3), "teacher.rank"),
    ("unknown spectrum", make(teacher__spectrum="zipf"), "teacher.spectrum"),
    ("explicit without values", make(teacher__singular_values=DROP), "teacher.singular_values"),
    ("unknown dynamics", make(dynamics__kind="adam"), "dynamics.kind"),
    ("finite data without n_samples", make(data={"kind": "finite"}), "data.n_samples"),
    ("n_samples with online data", make(data={"n_samples": 10}), "data.n_samples"),
    ("aligned with gamma", make(init__kind="aligned"), "init.gamma"),
    ("dt for sgd", make(dynamics__dt=0.01), "dynamics.dt"),
    ("flow in float32", make(dynamics__kind="flow", dynamics__precision="float32"), "dynamics.precision"),
    ("n_times below 2", make(record={"n_times": 1}), "record.n_times"),
    ("negative ensemble seed", make(ensemble={"seed": -1}), "ensemble.seed"),
    ("not a dict", [1, 2], "<config>"),
    # regressions found by the property tests below
    ("int beyond float range", make(dynamics__lr=10**400), "dynamics.lr"),
    ("bad rank with explicit spectrum", make(teacher__rank=[None]), "teacher.rank"),
    ("bad s_max with explicit spectrum", make(teacher__s_max="x"), "teacher.s_max"),
]


@pytest.mark.parametrize("d, field", [pytest.param(d, f, id=i) for i, d, f in INVALID])
def test_invalid_config_names_field(d, field):
    # Exact: the error must name the offending dotted field, and the message (what the CLI prints) must
    # contain it.
    with pytest.raises(ConfigError) as info:
        Config.from_dict(d)
    assert info.value.field == field
    assert field in str(info.value)
    assert info.value.allowed  # says what is allowed


# ---------------------------------------------------------------------------------------------------------
# Spectrum families (teacher.py docstring): tolerance 1e-14 relative — closed forms evaluated in float64.


@pytest.mark.parametrize("teacher, expected", [
    ({"spectrum": "power", "rank": 3, "s_max": 2.0, "exponent": 1.0}, [2.0, 1.0, 2.0 / 3.0, 0.0]),
    ({"spectrum": "power", "rank": 2, "s_max": 1.0, "exponent": 2.0}, [1.0, 0.25, 0.0, 0.0]),
    ({"spectrum": "geometric", "rank": 4, "s_max": 3.0, "ratio": 0.5}, [3.0, 1.5, 0.75, 0.375]),
    ({"spectrum": "linear", "rank": 4, "s_max": 2.0}, [2.0, 1.5, 1.0, 0.5]),  # default s_min = s_max/rank
    ({"spectrum": "linear", "rank": 3, "s_max": 2.0, "s_min": 1.0}, [2.0, 1.5, 1.0, 0.0]),
    ({"spectrum": "explicit", "singular_values": [3.0, 1.0]}, [3.0, 1.0, 0.0, 0.0]),
], ids=["power1", "power2", "geometric", "linear-default", "linear-smin", "explicit-padded"])
def test_spectrum_families(teacher, expected):
    d = make(teacher={"d_in": 5, "d_out": 4, "basis": "identity", **teacher})
    t = Teacher.from_config(Config.from_dict(d))
    np.testing.assert_allclose(t.s, expected, rtol=1e-14, atol=0)
    assert t.s.shape == (4,)  # padded with zeros to min(d_in, d_out)
    np.testing.assert_array_equal(t.M, np.eye(4, 5) * t.s[:, None])  # identity basis: M = diag(s)


def test_teacher_random_basis_is_orthogonal_and_matches_svd():
    # Random U, V: orthogonal to 1e-13 (QR in float64) and M's singular values are s (1e-13 relative).
    c = Config.from_dict(make(teacher={"d_in": 5, "d_out": 4, "singular_values": [3.0, 2.0, 1.0], "seed": 7}))
    t = Teacher.from_config(c)
    np.testing.assert_allclose(t.U.T @ t.U, np.eye(4), atol=1e-13)
    np.testing.assert_allclose(t.V.T @ t.V, np.eye(5), atol=1e-13)
    np.testing.assert_allclose(np.linalg.svd(t.M, compute_uv=False), [3.0, 2.0, 1.0, 0.0], rtol=1e-13, atol=1e-13)


# ---------------------------------------------------------------------------------------------------------
# --set parsing


@pytest.mark.parametrize("item, path, value", [
    ("dynamics.lr=0.02", ["dynamics", "lr"], 0.02),
    (" dynamics.lr = 1e-3 ", ["dynamics", "lr"], 1e-3),
    ("network.depth=3", ["network", "depth"], 3),
    ("dynamics.lr=[0.01, 0.02]", ["dynamics", "lr"], [0.01, 0.02]),
    ("network.width=[4,5]", ["network", "width"], [4, 5]),
    ("dynamics.kind=gd", ["dynamics", "kind"], "gd"),
    ('dynamics.kind="sde"', ["dynamics", "kind"], "sde"),
    ("init.path=weights/w0.npz", ["init", "path"], "weights/w0.npz"),
    ("data.whiten=true", ["data", "whiten"], True),
    ("data.whiten=false", ["data", "whiten"], False),
    ("teacher.label_noise=0", ["teacher", "label_noise"], 0),
    ("record.t_min=-0.5", ["record", "t_min"], -0.5),
])
def test_parse_override(item, path, value):
    p, v = parse_override(item)
    assert p == path
    assert v == value and type(v) is type(value)


@pytest.mark.parametrize("item", ["dynamics.lr", "lr=0.1", "a.b.c=1", ".lr=1", "dynamics.=1"])
def test_parse_override_rejects(item):
    with pytest.raises(ConfigError) as info:
        parse_override(item)
    assert info.value.field == "--set"


def test_overrides_are_applied():
    d = apply_overrides(make(), ["dynamics.lr=0.05", "network.depth=3", "network.width=[4, 6]",
                                 "dynamics.kind=gd", "ensemble.replicas=4", "data.whiten=true"])
    c = Config.from_dict(d)
    assert (c.dynamics.lr, c.network.depth, c.network.width, c.dynamics.kind) == (0.05, 3, (4, 6), "gd")
    assert c.ensemble.replicas == 4 and c.data.whiten is True
    assert make() == BASE  # the input dict is not mutated
    c2 = Config.from_dict(make()).with_overrides(["dynamics.steps=20", "init.gamma=2"])
    assert (c2.dynamics.steps, c2.init.gamma) == (20, 2.0)


def test_override_type_errors_name_field():
    with pytest.raises(ConfigError) as info:
        Config.from_dict(make()).with_overrides(["dynamics.lr=fast"])
    assert info.value.field == "dynamics.lr" and info.value.value == "fast"
    with pytest.raises(ConfigError) as info:
        Config.from_dict(make()).with_overrides(["optimizer.kind=adam"])
    assert info.value.field == "optimizer"


# ---------------------------------------------------------------------------------------------------------
# Round trips


ROUND_TRIP = [
    make(),
    make(teacher={"d_in": 4, "d_out": 3, "spectrum": "geometric", "rank": 2, "ratio": 0.25,
                  "input_variance": [1.0, 2.0, 3.0, 4.0], "label_noise": [0.0, 0.5], "basis": "identity"},
         network={"depth": 3, "width": [5, 6]},
         init={"kind": "gaussian", "gamma": [1.0, 2.0], "scaling": "min_fan"},
         dynamics={"kind": "sde", "lr": [0.01, 0.02], "t_max": 2.0, "noise": "label", "dt": 0.005},
         record={"n_times": 7, "spacing": "linear", "observables": ["loss", "mode_strength"]},
         ensemble={"replicas": 3, "seed": 11}),
    make(data={"kind": "finite", "n_samples": 50, "whiten": True, "sampling": "with_replacement", "seed": 2},
         network={"depth": 3, "width": 2},
         init={"kind": "aligned", "layer_values": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]}),
    make(init={"kind": "aligned", "scale": [0.01, 0.1], "hidden_basis": "identity"},
         dynamics={"kind": "flow", "t_max": 3.0, "rtol": 1e-8, "atol": 1e-12}),
]


@pytest.mark.parametrize("d", ROUND_TRIP, ids=["base", "stacked-sde", "finite-aligned", "flow"])
def test_round_trip(d, tmp_path):
    c = Config.from_dict(d)
    assert Config.from_dict(c.to_dict()) == c
    # TOML: the file the CLI writes reloads to the same config.
    text = config_to_toml(c)
    assert Config.from_dict(tomllib.loads(text)) == c
    (tmp_path / "c.toml").write_text(text)
    assert load_config(tmp_path / "c.toml") == c


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml")
    assert info.value.field == "CONFIG"
    (tmp_path / "bad.toml").write_text("[teacher\nd_in = 3")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "bad.toml")
    assert info.value.field == "CONFIG"


# ---------------------------------------------------------------------------------------------------------
# Stacking grid


def test_replica_grid_order_and_size():
    c = Config.from_dict(make(
        teacher={"d_in": 3, "d_out": 2, "singular_values": [1.0], "label_noise": [0.0, 0.1, 0.2]},
        init={"kind": "gaussian", "gamma": [1.0, 2.0]},
        dynamics={"kind": "sgd", "lr": [0.01, 0.02], "t_max": 1.0},
        ensemble={"replicas": 2},
    ))
    grid = c.replica_grid()
    assert len(grid) == 2 * 3 * 2 * 2
    # Product in the order of STACKABLE (lr outermost), seeds (member) innermost.
    expected = [{"dynamics.lr": lr, "teacher.label_noise": ln, "init.gamma": g, "member": m}
                for lr, ln, g, m in itertools.product([0.01, 0.02], [0.0, 0.1, 0.2], [1.0, 2.0], range(2))]
    assert grid == expected
    assert c.stacked() == {"dynamics.lr": [0.01, 0.02], "teacher.label_noise": [0.0, 0.1, 0.2],
                           "init.gamma": [1.0, 2.0]}


def test_replica_grid_unstacked():
    c = Config.from_dict(make(ensemble={"replicas": 5}))
    assert c.replica_grid() == [{"member": m} for m in range(5)]
    assert c.stacked() == {}


def test_replica_grid_stacked_scale():
    c = Config.from_dict(make(init={"kind": "aligned", "scale": [0.1, 0.2, 0.3]}, ensemble={"replicas": 1}))
    assert [r["init.scale"] for r in c.replica_grid()] == [0.1, 0.2, 0.3]


# ---------------------------------------------------------------------------------------------------------
# Property: Config.from_dict never raises anything but ConfigError, and what it accepts round-trips.

KEYS = {sec: [f.name for f in cls.__dataclass_fields__.values()] for sec, cls in SECTIONS.items()}
ALL_KEYS = sorted({k for ks in KEYS.values() for k in ks})

scalars = st.sampled_from([
    None, True, False, 0, 1, 2, 3, 10, -1, 2**63 - 1, 10**400, 0.0, -0.0, 0.5, 1.5, 1e-3, -2.5, 1e308,
    math.nan, math.inf, -math.inf, "", "x", "sgd", "sde", "gd", "flow", "online", "finite", "aligned",
    "gaussian", "orthogonal", "file", "power", "geometric", "linear", "explicit", "identity", "random",
    "min_fan", "width", "exact", "label", "isotropic", "float32", "float64", "log", "loss", "mode_strength",
    "with_replacement", "without_replacement", "/nonexistent.npz",
])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["a", "kind", "lr"]), inner, max_size=2), max_leaves=6)


def _check_outcome(d):
    try:
        c = Config.from_dict(d)
    except ConfigError as exc:
        assert isinstance(exc.field, str) and exc.field in str(exc)
        return
    # Accepted: it must round-trip through to_dict and be writable as TOML (the CLI saves it).
    assert Config.from_dict(c.to_dict()) == c
    assert Config.from_dict(tomllib.loads(config_to_toml(c))) == c


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from([*SECTIONS, "bogus"]),
    st.dictionaries(st.sampled_from([*ALL_KEYS, "bogus"]), values, max_size=6) | values,
    max_size=7))
def test_from_dict_random_dicts(d):
    _check_outcome(d)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ROUND_TRIP), st.lists(st.tuples(st.sampled_from(list(SECTIONS)), st.data()), max_size=4),
       st.data())
def test_from_dict_mutated_valid(base, edits, data):
    # Start from a valid config and overwrite up to 4 of its keys: reaches the deep consistency checks that
    # random dicts rarely get past.
    d = copy.deepcopy(base)
    for sec, draw in edits:
        key = draw.draw(st.sampled_from(KEYS[sec]))
        d.setdefault(sec, {})[key] = draw.draw(values)
    if data.draw(st.booleans()):
        d["dynamics"].pop("t_max", None)
    _check_outcome(d)


def test_linear_spectrum_rejects_s_min_above_s_max():
    d = {"teacher": {"spectrum": "linear", "rank": 3, "s_max": 1.0, "s_min": 2.0},
         "init": {"gamma": 1.0}, "dynamics": {"steps": 1}}
    with pytest.raises(ConfigError) as info:
        Config.from_dict(d)
    assert info.value.field == "teacher.s_min"
