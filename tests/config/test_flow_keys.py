"""The flow keys of issue 15: ``dynamics.solver``, ``dynamics.arithmetic``, ``dynamics.t_max = "auto"`` and
``record.per_decade``: their
defaults, and the errors that name the field to change."""

import pytest

import dlnlab
from dlnlab.errors import ConfigError

NETWORK = {"teacher": {"singular_values": [1.0]}, "init": {"kind": "gaussian", "gamma": 1.0}}


def _cfg(dynamics, record=None, base=NETWORK):
    return dlnlab.Config.from_dict({**base, "dynamics": dynamics, **({"record": record} if record else {})})


def test_defaults():
    c = _cfg({"kind": "flow", "t_max": "auto"})
    assert c.dynamics.solver == "auto" and c.dynamics.t_max == "auto" and c.record.per_decade == 20
    assert _cfg({"kind": "flow", "t_max": 2}).dynamics.t_max == 2.0  # numbers as before
    assert dlnlab.config.FIELDS["dynamics.solver"].default == "auto"
    assert c.dynamics.arithmetic == "auto"


def test_toml_round_trip_and_override(tmp_path):
    c = _cfg({"kind": "flow", "t_max": "auto", "solver": "implicit"}, {"per_decade": 8})
    path = tmp_path / "c.toml"
    path.write_text(dlnlab.config.config_to_toml(c))
    assert dlnlab.load_config(path) == c
    d = dlnlab.load_config(path, ["dynamics.t_max=5.0", "record.per_decade=20"])
    assert d.dynamics.t_max == 5.0 and d.dynamics.solver == "implicit"
    assert dlnlab.load_config(path, ['dynamics.t_max="auto"', "record.per_decade=3"]).record.per_decade == 3


@pytest.mark.parametrize("dynamics, record, base, key, allowed", [
    ({"kind": "sgd", "steps": 3, "solver": "implicit"}, None, NETWORK, "dynamics.solver",
     "omitted unless dynamics.kind = 'flow'"),
    ({"kind": "flow", "steps": 3, "solver": "rk4"}, None, NETWORK, "dynamics.solver",
     "one of 'auto', 'explicit', 'implicit'"),
    ({"kind": "flow", "t_max": "soon"}, None, NETWORK, "dynamics.t_max", "a finite number > 0 or one of 'auto'"),
    ({"kind": "flow", "t_max": -1.0}, None, NETWORK, "dynamics.t_max", "a finite number > 0 or one of 'auto'"),
    ({"kind": "sgd", "t_max": "auto"}, None, NETWORK, "dynamics.t_max", "'auto' is for the network model's flow"),
    ({"kind": "sgd", "t_max": "auto"}, None, {"modes": {"singular_values": [1.0], "m0": 1e-3}}, "dynamics.t_max",
     "'auto' is for the network model's flow"),
    ({"kind": "flow", "t_max": "auto", "solver": "explicit"}, None, NETWORK, "dynamics.solver",
     "'auto' or 'implicit' when dynamics.t_max = 'auto'"),
    ({"kind": "flow", "t_max": "auto"}, {"n_times": 50}, NETWORK, "record.n_times",
     "omitted when dynamics.t_max = 'auto'"),
    ({"kind": "flow", "t_max": "auto"}, {"chunks": 4}, NETWORK, "record.chunks",
     "omitted when dynamics.t_max = 'auto'"),
    ({"kind": "flow", "t_max": 3.0}, {"per_decade": 5}, NETWORK, "record.per_decade",
     "omitted unless dynamics.t_max = 'auto'"),
    ({"kind": "flow", "t_max": "auto"}, {"per_decade": 0}, NETWORK, "record.per_decade", "an integer >= 1"),
    ({"kind": "gd", "steps": 3, "arithmetic": "double-double"}, None, NETWORK, "dynamics.arithmetic",
     "omitted unless dynamics.kind = 'flow'"),
    ({"kind": "flow", "t_max": 3.0, "arithmetic": "quad"}, None, NETWORK, "dynamics.arithmetic",
     "one of 'auto', 'float64', 'double-double'"),
    ({"kind": "flow", "t_max": 3.0, "arithmetic": "double-double", "precision": "float32"}, None, NETWORK,
     "dynamics.precision", "'float64' for flow"),
])
def test_errors_name_the_field(dynamics, record, base, key, allowed):
    with pytest.raises(ConfigError) as info:
        _cfg(dynamics, record, base)
    assert info.value.field == key and allowed in str(info.value), str(info.value)
