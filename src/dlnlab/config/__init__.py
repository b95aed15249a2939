"""Run configuration: typed sections, defaults, and the validation of every config in one place.

A config is a nested mapping (TOML on disk). Its sections describe one simulator (its ``model``): the deep linear
network (``teacher``, ``data``, ``network``, ``init``), the per-mode reduction (``modes``), [Z]'s diagonal network
(``diagonal``), the two-layer ReLU network (``relu``) or a diagonal network for sparse regression (``regression``),
beside the shared ``dynamics``, ``record`` and ``ensemble``. :data:`FIELDS` declares every key once (default,
constraint, doc, the models using it); :data:`RULES` are the named cross-field rules. ``Config.from_dict`` checks
every key and value against both and raises :class:`~dlnlab.errors.ConfigError` naming the field, the value and
what is allowed.

The rest of the library rejects bad input the same way: a public function (theory, analysis, stats, experiments)
given an argument it cannot use raises the same :class:`~dlnlab.errors.ConfigError` (also a ``ValueError``), with
``field`` its own argument's name (``depth``, ``alpha``, ``ds``; a dataclass's ``Claim.kind``), often checked with
the constraint objects here (:class:`Interval`, :class:`Options`).

Hyper-parameters that keep array shapes may be given as lists and are *stacked* on the replica axis (the
product of all lists, each combination with ``ensemble.replicas`` seeds): :data:`STACKABLE`.
"""

from ..errors import ConfigError
from ._config import Config
from ._constraints import Boolean, Constraint, Interval, ListOf, Options, OrList, Text
from ._io import apply_overrides, config_to_toml, load_config, parse_override
from ._rules import RULES, Rule
from ._sections import (
    BUILTIN_OBSERVABLES,
    FIELDS,
    MODEL_SECTIONS,
    MODELS,
    OPTIONAL_OBSERVABLES,
    SECTIONS,
    SHARED_SECTIONS,
    STACKABLE,
    DataConfig,
    DiagonalConfig,
    DynamicsConfig,
    EnsembleConfig,
    Field,
    InitConfig,
    ModesConfig,
    NetworkConfig,
    RecordConfig,
    RegressionConfig,
    ReluConfig,
    TeacherConfig,
)

__all__ = [
    "BUILTIN_OBSERVABLES", "FIELDS", "MODELS", "MODEL_SECTIONS", "OPTIONAL_OBSERVABLES", "RULES", "SECTIONS",
    "SHARED_SECTIONS", "STACKABLE", "Boolean", "Config", "ConfigError", "Constraint", "DataConfig", "DiagonalConfig",
    "DynamicsConfig", "EnsembleConfig", "Field", "InitConfig", "Interval", "ListOf", "ModesConfig", "NetworkConfig",
    "Options", "OrList", "RecordConfig", "RegressionConfig", "ReluConfig", "Rule", "TeacherConfig", "Text",
    "apply_overrides", "config_to_toml", "load_config", "parse_override",
]
