"""Experiments: registered by name, each with quick and full presets, writing data, figures and claims.

An experiment is a function ``fn(params: dict, out: Path) -> ExperimentResult``. ``params`` is the
chosen preset (a flat dict) updated by ``--set key=value`` overrides; ``out`` is its own directory. The
result lists the claims it checks (theory vs simulation, with uncertainty, tolerance and verdict) and the
figures it wrote (with captions saying what to see). Claims are being migrated from :class:`Claim` (hand-written
verdict) to :class:`dlnlab.experiments.claims.Claim` (computed verdict); a result may hold both meanwhile.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import importlib.metadata
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, Options, parse_override
from .claims import PAPERS, VERDICTS
from .claims import Claim as ComputedClaim


@dataclass(frozen=True)
class Claim:
    """One checked claim: a row of the claims table."""

    paper: str  # key of PAPERS
    claim: str  # the claim in words
    experiment: str
    quantity: str  # what is compared
    theory: float  # theoretical value (nan if the claim is qualitative)
    value: float  # simulated value
    uncertainty: float  # one standard error (or a stated spread) of ``value``
    tolerance: str  # the tolerance used, in words
    verdict: str  # holds | fails | not applicable

    def __post_init__(self):
        Options(*PAPERS).check("Claim.paper", self.paper)
        Options(*VERDICTS).check("Claim.verdict", self.verdict)


def verdict(ok: bool) -> str:
    return "holds" if ok else "fails"


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the experiment directory
    caption: str  # what to see


@dataclass
class ExperimentResult:
    name: str
    claims: list[Claim] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    wall_time_s: float = 0.0

    def to_json(self) -> str:
        d = {"name": self.name, "claims": [_claim_row(c) for c in self.claims],
             "figures": [dataclasses.asdict(f) for f in self.figures], "params": self.params,
             "wall_time_s": self.wall_time_s}
        return json.dumps(d, indent=1, default=_json_default)

    def _repr_html_(self) -> str:
        """The claims table with verdict colours, for notebooks."""
        from .table import result_html

        return result_html(self)

    @classmethod
    def from_json(cls, text: str) -> ExperimentResult:
        d = json.loads(text)
        claims = [ComputedClaim.from_dict(c) if "id" in c else Claim(**c) for c in d["claims"]]
        return cls(name=d["name"], claims=claims, figures=[Figure(**f) for f in d["figures"]], params=d["params"],
                   wall_time_s=d["wall_time_s"])


def _claim_row(c) -> dict:
    return c.to_dict() if isinstance(c, ComputedClaim) else dataclasses.asdict(c)


def _json_default(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(type(x))


@dataclass(frozen=True)
class Perturbation:
    """A theory input evaluated off its true value, for the power test (issue 14 item 5): the experiment computes
    its theory values with ``input`` multiplied by ``factor`` (the simulation is unchanged), and every measured
    row that holds at the true input and whose theory value moves must then fail."""

    input: str  # the name of the theory input, a key of the experiment's ``perturb`` parameter (e.g. "s", "T")
    factor: float  # e.g. 1.05 or 1.2
    description: str  # e.g. "teacher singular values × 1.05 in the theory only"


@dataclass(frozen=True)
class Experiment:
    """A registered experiment. ``presets``: ``quick``, ``full`` and ``smoke`` (a reduced preset, used by the tests,
    at which the measured rows' verdicts are stable); every preset has a ``seed`` (``dlnlab reproduce --seed K``
    shifts it) and a ``perturb`` mapping (theory input → factor; ``{}``: the true theory)."""

    name: str
    paper: str
    claim: str  # the claim it reproduces, in one line
    fn: Callable
    presets: dict  # {"quick": {...}, "full": {...}, "smoke": {...}}
    cost: str  # rough wall time of the quick preset on 2 cores
    perturbations: tuple[Perturbation, ...] = ()
    smoke_declared: bool = False  # register(..., smoke=...) was given (``smoke={}``: the quick preset is the smoke one)

    def params(self, preset: str, overrides: list[str] | None = None, seed: int = 0) -> dict:
        """The preset's parameters, changed by ``overrides`` (``key=value``), then ``seed`` added to its ``seed``."""
        if preset not in self.presets:
            raise ConfigError("preset", preset, "one of " + ", ".join(self.presets))
        p = dict(self.presets[preset])
        for item in overrides or []:
            (key,), value = _flat_override(item)
            if key not in p:
                raise ConfigError(f"{self.name}.{key}", value, "a parameter among " + ", ".join(sorted(p)))
            p[key] = value
        if seed:
            if not isinstance(p.get("seed"), int) or isinstance(p["seed"], bool):
                raise ConfigError(f"{self.name}.seed", p.get("seed", "(missing)"), "an integer seed parameter in "
                                  f"the {preset!r} preset, which --seed shifts (the experiment contract)")
            p["seed"] += seed
        return p

    def run(self, preset: str = "quick", out: Path | str = "dlnlab-runs/exp", overrides=None,
            seed: int = 0) -> ExperimentResult:
        """Run the preset (changed by ``overrides``, its ``seed`` shifted by ``seed``) into ``out``: the result,
        ``result.json`` and ``claims.csv``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        params = self.params(preset, overrides, seed)
        t0 = time.perf_counter()
        result = self.fn(params, out)
        result.params = {"preset": preset, **params}
        result.wall_time_s = time.perf_counter() - t0
        (out / "result.json").write_text(result.to_json())
        write_claims_csv(result.claims, out / "claims.csv")
        return result


def _flat_override(item: str):
    if "=" not in item or "." in item.split("=", 1)[0]:
        raise ConfigError("--set", item, "key=value with a parameter name of the experiment, e.g. replicas=64")
    key, _ = item.split("=", 1)
    _, value = parse_override(f"x.{item}")
    return (key.strip(),), value


#: the entry-point group through which other packages register experiments (``docs/plugins.md``): each entry point
#: names a module whose import registers them (with :func:`register`, and their paper with :func:`register_paper`)
ENTRY_POINTS = "dlnlab.experiments"


class Registry(MutableMapping):
    """The registered experiments by name, loaded on first use: the built-in modules (``experiments/_builtin.py``),
    then every module of the entry-point group :data:`ENTRY_POINTS`. ``plugins`` maps a plugin experiment's name
    to its entry point ``"NAME = VALUE (DISTRIBUTION)"``. Register with :func:`register`; item assignment
    (``REGISTRY[name] = experiment``, under that experiment's own name) and deletion replace or remove one, e.g. a
    test's ``monkeypatch.setitem``."""

    def __init__(self):
        self._experiments: dict[str, Experiment] = {}
        self.plugins: dict[str, str] = {}
        self._loaded = False

    def add(self, exp: Experiment) -> None:
        if exp.name in self._experiments:
            raise ConfigError("name", exp.name, "a name not registered yet (REGISTRY[name] = experiment replaces one)")
        self._experiments[exp.name] = exp

    def load(self) -> Registry:
        """Import the built-in experiment modules and the plugins (once); a plugin that fails to import raises
        an ``ImportError`` naming it."""
        if self._loaded:
            return self
        self._loaded = True  # before the imports: they register into this registry
        importlib.import_module("._builtin", __package__)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
            before = set(self._experiments)
            where = f"{ep.name} = {ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})"
            try:
                ep.load()
            except Exception as exc:
                raise ImportError(f"the dlnlab plugin {where} (entry-point group {ENTRY_POINTS}) failed to load: "
                                  f"{type(exc).__name__}: {exc}") from exc
            self.plugins.update(dict.fromkeys(sorted(set(self._experiments) - before), where))
        return self

    def __getitem__(self, name: str) -> Experiment:
        return self.load()._experiments[name]

    def __setitem__(self, name: str, exp: Experiment) -> None:
        if name != exp.name:
            raise ConfigError("name", name, f"the experiment's own name {exp.name!r} (REGISTRY[exp.name] = exp)")
        self.load()._experiments[name] = exp

    def __delitem__(self, name: str) -> None:
        del self.load()._experiments[name]
        self.plugins.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.load()._experiments)

    def __len__(self) -> int:
        return len(self.load()._experiments)


REGISTRY = Registry()


def theory_factors(params: Mapping, allowed: tuple[str, ...]) -> dict[str, float]:
    """The factor of every theory input of ``allowed`` from the preset's ``perturb`` mapping (1 where it does not name
    it): an experiment multiplies each input by its factor only where it computes theory values, never in a
    simulation (the power tests, :class:`Perturbation`). A key outside ``allowed`` or a factor that is not a finite
    number > 0 is a :class:`~dlnlab.errors.ConfigError`."""
    pert = dict(params.get("perturb") or {})
    for name, f in pert.items():
        if name not in allowed:
            raise ConfigError("perturb", pert, "theory inputs among " + ", ".join(allowed))
        if not (isinstance(f, int | float) and math.isfinite(f) and f > 0):
            raise ConfigError(f"perturb.{name}", f, "a factor > 0")
    return {name: float(pert.get(name, 1.0)) for name in allowed}


def write_csv(path, rows: list[dict]) -> None:
    """``rows`` (dicts, keys in order of first appearance) as a CSV file, floats to 6 significant digits; nothing for
    no rows."""
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def register(name: str, *, paper: str, claim: str, cost: str, quick: dict, full: dict, smoke: dict | None = None,
             perturbations: tuple[Perturbation, ...] = ()):
    """Decorator registering ``fn(params, out) -> ExperimentResult`` as an experiment.

    ``smoke`` defaults to ``quick``. Every preset gains ``perturb = {}`` (see :class:`Experiment`) unless given;
    every preset should have a ``seed`` (checked over the registry by the tests). ``paper``: a key of
    :data:`~dlnlab.experiments.claims.PAPERS` (a plugin adds its own with :func:`register_paper` first)."""

    def deco(fn):
        if paper not in PAPERS:
            raise ConfigError("paper", paper, f"one of {', '.join(PAPERS)} (experiment {name!r}; register a new "
                                              "paper first with register_paper)")
        presets = {"quick": dict(quick), "full": dict(full), "smoke": {**quick, **(smoke or {})}}
        for preset in presets.values():
            preset.setdefault("perturb", {})
        for pert in perturbations:
            if not isinstance(pert, Perturbation):
                raise TypeError(f"experiment {name!r}: perturbations must be Perturbation objects, got {pert!r}")
        REGISTRY.add(Experiment(name, paper, claim, fn, presets, cost, tuple(perturbations), smoke is not None))
        return fn

    return deco


def register_paper(key: str, title: str) -> None:
    """Add a paper to :data:`~dlnlab.experiments.claims.PAPERS` (for a plugin's experiments and claims rows):
    ``key`` a short tag such as ``"K"`` (``dlnlab reproduce --paper K``), ``title`` "Authors (year) — title".
    Registering the same key again with the same title does nothing; with another title it raises."""
    if not (isinstance(key, str) and key.isidentifier() and len(key) <= 16):
        raise ConfigError("key", key, "a short identifier (≤ 16 characters) such as 'K' or 'Kim25'")
    if not (isinstance(title, str) and title.strip()):
        raise ConfigError("title", title, f"a non-empty string (the title of paper {key!r})")
    if PAPERS.get(key, title) != title:
        raise ConfigError("key", key, f"a new key: {key!r} is already registered as {PAPERS[key]!r} (the same key "
                                      "again only with the same title)")
    PAPERS[key] = title


def get(name: str) -> Experiment:
    if name not in REGISTRY:
        raise ConfigError("experiment", name, "one of " + ", ".join(sorted(REGISTRY)))
    return REGISTRY[name]


# the leading columns of claims.csv; the other fields of a computed claim's row follow (blank for old rows)
CSV_COLUMNS = ("id", "experiment", "paper", "kind", "source", "claim", "quantity", "setting", "theory", "value",
               "uncertainty", "alpha", "tolerance", "verdict", "note")


def write_claims_csv(claims: list, path: Path) -> None:
    """One row per claim: :data:`CSV_COLUMNS`, then the rest of a computed claim's :meth:`~claims.Claim.to_dict`
    (the evidence, to judge it again); an old :class:`Claim` row leaves the columns it lacks blank. The ``theory``
    rows (self-checks of our own closed forms) come last, as their own block — the report's "theory self-checks"
    section; the others keep their order."""
    rows = sorted((_claim_row(c) for c in claims), key=lambda r: r.get("kind") == "theory")
    cols = list(dict.fromkeys([*CSV_COLUMNS, *(k for r in rows for k in r)]))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
