"""Every simulator is configured the same way (issue 13 item 2) and validated in one place (item 3): the field table
is introspectable (key, type, default, allowed values, doc: what the config reference is generated from), the
per-mode, diagonal and ReLU sections round-trip through TOML, ``Config.of`` takes the same keyword names, bad input
names its field, and ``dlnlab train`` runs a config of any model. No long simulations here."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

import dlnlab
from dlnlab.cli import app
from dlnlab.config import FIELDS, MODEL_SECTIONS, RULES, SECTIONS, STACKABLE, Config, config_to_toml
from dlnlab.engines import as_network, diagonal_config, mode_config, reduce_to_modes, relu_config
from dlnlab.errors import ConfigError
from dlnlab.model import DiagonalModel, ReluTask

MODES = {"modes": {"singular_values": [2.0, 1.0], "depth": 2, "m0": [0.01, 0.1], "label_noise": 0.3},
         "dynamics": {"kind": "sde", "lr": 0.01, "dt": 0.005, "t_max": 0.05},
         "record": {"n_times": 3, "spacing": "linear"}, "ensemble": {"replicas": 2}}
DIAGONAL = {"diagonal": {"depth": 3, "n_paths": 2, "v0": [0.5, 0.2], "weight_decay": 0.01},
            "dynamics": {"kind": "sde_log", "lr": [0.1, 0.2], "dt": 0.01},
            "record": {"times": [0.02, 0.05]}, "ensemble": {"replicas": 2, "common_random_numbers": False}}
RELU = {"relu": {"d": 2, "hidden": 3, "n_mc": 100, "n_bound_records": 1},
        "dynamics": {"kind": "sgd", "lr": 0.05, "steps": 4}, "record": {"n_times": 3, "spacing": "linear"},
        "ensemble": {"replicas": 2}}


def test_field_table_is_introspectable():
    """Every key declares a default, a constraint that says in words what it allows, a doc string and the
    models using it; the stackable keys are those flagged so; every rule has a name and a doc string."""
    sections = {key.split(".")[0] for key in FIELDS}
    assert sections == set(SECTIONS)
    for key, f in FIELDS.items():
        assert f.key == key and f.doc and f.constraint.text and f.allowed.startswith(f.constraint.text), key
        assert set(f.models) <= set(MODEL_SECTIONS), key
        if f.default is not None:  # a default passes its own constraint
            assert f.constraint.check(key, f.default) == f.default, key
    assert sorted(STACKABLE) == sorted(k for k, f in FIELDS.items() if f.stackable)
    assert all(r.name and r.doc for r in RULES)
    assert FIELDS["dynamics.lr"].allowed == "a finite number > 0, or a non-empty list of these; a list stacks replicas"


@pytest.mark.parametrize("d, model", [(MODES, "modes"), (DIAGONAL, "diagonal"), (RELU, "relu")])
def test_model_sections_round_trip(d, model, tmp_path):
    c = Config.from_dict(d)
    assert c.model == model
    assert Config.from_dict(c.to_dict()) == c
    text = config_to_toml(c)
    assert Config.from_dict(tomllib.loads(text)) == c
    assert set(tomllib.loads(text)) == {*MODEL_SECTIONS[model], "dynamics", "record", "ensemble"}


def test_builders_take_the_config_key_names():
    """``mode_config``, ``diagonal_config``, ``relu_config`` and ``Config.of`` take the keys' own names."""
    m = mode_config([2.0, 1.0], depth=2, lr=0.01, m0=[0.01, 0.1], label_noise=0.3, kind="sde", dt=0.005, t_max=0.05,
                    n_times=3, replicas=2)
    assert m == Config.from_dict(MODES) == Config.of("modes", **MODES["modes"], **MODES["dynamics"], n_times=3,
                                                     spacing="linear", replicas=2)
    assert m.dynamics.scheme == "em"  # resolved by the rule sde_scheme
    dg = diagonal_config(DiagonalModel(depth=3, n_paths=2, weight_decay=0.01), kind="sde_log", lr=[0.1, 0.2], dt=0.01,
                         times=[0.02, 0.05], v0=[0.5, 0.2], replicas=2, common_random_numbers=False)
    assert dg == Config.from_dict(DIAGONAL) and dg.dynamics.scheme == "tamed"
    assert relu_config(ReluTask(d=2, hidden=3), steps=4, lr=0.05, n_times=3, replicas=2, n_mc=100,
                       n_bound_records=1) == Config.from_dict(RELU)
    with pytest.raises(ConfigError) as info:
        Config.of("modes", learning_rate=0.1)
    assert info.value.field == "learning_rate" and "lr" in info.value.allowed


def test_as_network_and_reduce_to_modes_are_inverse():
    m = mode_config([2.0, 1.0], depth=3, lr=0.01, strength=[0.1, 0.2], steps=10, n_times=3, replicas=2)
    net = as_network(m)
    assert net.model == "network" and net.init.kind == "aligned" and net.layer_dims == (2, 2, 2, 2)
    assert reduce_to_modes(net) == m


def test_replicas_of_stacked_combinations_share_streams_unless_asked():
    c = Config.from_dict(DIAGONAL)
    assert [r["member"] for r in c.replica_grid()] == [0, 1, 2, 3]
    d = {**DIAGONAL, "ensemble": {"replicas": 2}}
    assert [r["member"] for r in Config.from_dict(d).replica_grid()] == [0, 1, 0, 1]


BAD = [
    ("two models", {**MODES, "teacher": {"d_in": 2}}, "modes"),
    ("key of another model", {**RELU, "dynamics": {**RELU["dynamics"], "rtol": 1e-6}}, "dynamics.rtol"),
    ("observables for modes", {**MODES, "record": {**MODES["record"], "observables": ["loss"]}}, "record.observables"),
    ("flow per mode", {**MODES, "dynamics": {**MODES["dynamics"], "kind": "flow", "dt": None}}, "dynamics.kind"),
    ("diagonal scheme per mode", {**MODES, "dynamics": {**MODES["dynamics"], "scheme": "tamed"}}, "dynamics.scheme"),
    ("scheme without SDE", {**RELU, "dynamics": {**RELU["dynamics"], "scheme": "em"}}, "dynamics.scheme"),
    ("modes start missing", {**MODES, "modes": {"singular_values": [1.0]}}, "modes.m0"),
    ("modes two starts", {**MODES, "modes": {**MODES["modes"], "strength": [0.1]}}, "modes.m0"),
    ("log scheme from zero", {**MODES, "modes": {**MODES["modes"], "m0": 0.0},
                              "dynamics": {**MODES["dynamics"], "scheme": "log"}}, "modes.m0"),
    ("isotropic per mode", {**MODES, "dynamics": {**MODES["dynamics"], "noise": "isotropic"}}, "dynamics.noise"),
    ("v0 of the wrong length", {**DIAGONAL, "diagonal": {**DIAGONAL["diagonal"], "v0": [0.5]}}, "diagonal.v0"),
    ("sde_log from random factors", {**DIAGONAL, "diagonal": {"depth": 3, "init_scale": 0.1}}, "diagonal.init_scale"),
    ("stacked lr needs dt", {**DIAGONAL, "dynamics": {**DIAGONAL["dynamics"], "dt": None}}, "dynamics.dt"),
    ("stacked lr for diagonal sgd", {**DIAGONAL, "dynamics": {"kind": "sgd", "lr": [0.1, 0.2]}}, "dynamics.lr"),
    ("times not increasing", {**DIAGONAL, "record": {"times": [0.05, 0.02]}}, "record.times"),
    ("times and n_times", {**DIAGONAL, "record": {"times": [0.05], "n_times": 5}}, "record.n_times"),
    ("times and t_max", {**RELU, "record": {"times": [0.1]}}, "dynamics.steps"),
    ("relu n_mc", {**RELU, "relu": {"n_mc": 150}}, "relu.n_mc"),
    ("relu stacked lr", {**RELU, "dynamics": {**RELU["dynamics"], "lr": [0.1, 0.2]}}, "dynamics.lr"),
    ("diagonal depth", {**DIAGONAL, "diagonal": {**DIAGONAL["diagonal"], "depth": 0}}, "diagonal.depth"),
]


@pytest.mark.parametrize("d, field", [pytest.param(d, f, id=i) for i, d, f in BAD])
def test_bad_model_configs_name_the_field(d, field):
    d = {sec: {k: v for k, v in vals.items() if v is not None} for sec, vals in d.items()}
    with pytest.raises(ConfigError) as info:
        Config.from_dict(d)
    assert info.value.field == field and field in str(info.value) and info.value.allowed


def test_model_objects_use_the_table():
    with pytest.raises(ConfigError) as info:
        DiagonalModel(depth=0)
    assert info.value.field == "diagonal.depth"
    with pytest.raises(ConfigError) as info:
        ReluTask(label_noise=-1.0)
    assert info.value.field == "relu.label_noise"


@pytest.mark.parametrize("d", [MODES, DIAGONAL, RELU], ids=["modes", "diagonal", "relu"])
def test_train_runs_every_model(d, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(config_to_toml(Config.from_dict(d)))
    res = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    ds = dlnlab.load(tmp_path / "out" / "dataset.zarr")
    assert ds.attrs["model"] == Config.from_dict(d).model and ds.attrs["complete"] == 1
    bad = CliRunner().invoke(app, ["train", str(path), "--set", "dynamics.rtol=1e-3", "--no-progress"])
    assert bad.exit_code == 2 and "dynamics.rtol" in bad.output
