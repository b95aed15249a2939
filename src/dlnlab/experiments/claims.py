"""Claims computed in one place: a theory value, an estimate and a tolerance; the verdict is computed, never written.

A :class:`Claim` is one row of the claims table (issue 14 items 1–2):

* a **stable id** ``experiment/key/setting`` (``key`` a short slug of the claim, ``setting`` the parameters of
  the row, e.g. ``setting(depth=2, T=0.1)`` → ``"depth=2, T=0.1"``), for the verdict-regression file;
* ``paper`` (a key of :data:`PAPERS`), the ``claim`` in words, the ``quantity`` compared;
* ``theory`` (the independent theory value θ; NaN for a qualitative claim judged against a threshold only),
  ``estimate`` (a :class:`dlnlab.analysis.stats.Estimate`: value, SE, dof or sample size and its law) and
  ``tolerance`` (a :class:`Tolerance`: the band the estimand must lie in, the false-fail rate α and why);
* ``kind``: ``measured`` (a simulated quantity against an independent theory value; only these count in
  "N of M hold"), ``theory`` (a numerical check of our own closed forms: a self-check, never a reproduction) or
  ``beyond`` (a measurement past the papers); ``source``: ``paper`` (the paper states it) or ``derived`` (our
  derivation: every [C] and [J] formula); a free ``note``.

The verdict is :func:`dlnlab.analysis.stats.decide` applied to the estimate's confidence bounds at α and its
smallest detectable differences (``stats.evidence``) inside ``tolerance.band(theory)``:

* ``holds``: the one-sided ``1 − α`` bounds both lie in the band (the whole ``1 − 2α`` interval: TOST);
* ``fails``: the interval lies wholly outside the band, or the run resolves its tolerance (each finite edge of
  the band is at least the smallest detectable difference away from θ) and the interval is not inside it — so a
  correct theory fails with probability ≤ α, the row's stated false-fail rate;
* ``inconclusive``: neither (the run is too noisy for its tolerance; a threshold claim without θ whose interval
  straddles the threshold);
* ``not applicable``: no estimate (value NaN) or no band (θ NaN for a θ-relative tolerance).

There is no way to pass a verdict: ``Claim(verdict=...)`` and ``dataclasses.replace(claim, verdict=...)`` raise,
and a row read back (:meth:`Claim.from_dict`) is judged again from its recorded evidence and must agree.
Qualitative claims become a statistic with an interval and a threshold: "mode 1 peaks before mode 2" is the
batch-means estimate of ``t₂ − t₁`` with ``Tolerance.above(0.0)``; "in every run" is a Wilson fraction with
``theory = 1`` and ``Tolerance.above(0.9)`` (which also resolves: ``1 − 0.9`` against the fraction's detectable
difference).

**Migrating an experiment** from the old ``experiments.base.Claim`` (positional, hand-written verdict) is
mechanical, one row at a time (``ExperimentResult`` serialises both kinds during the migration)::

    Claim("C", text, "exp", quantity, theory, value, se, "within 4 SE + 5 %", verdict(ok))
    →  claims.Claim(experiment="exp", key="slug", setting=setting(depth=L), paper="C", claim=text,
                    quantity=quantity, theory=theory, estimate=stats.group_estimate(x),
                    tolerance=Tolerance.within(relative=0.05, why="…"), kind="measured", source="derived")

* ``value, se`` → the estimate built from the data: ``group_estimate`` (means and smooth statistics over
  replicas), ``bootstrap_quantile`` (medians, quantiles; ``censored=True`` for first-hit times), ``wilson``
  (fractions), ``ks_1samp``/``ks_2samp`` (``.distance``), ``Estimate.student`` (a regression slope),
  ``Estimate.exact(value, bound)`` (a deterministic number with its numerical error bound);
* the condition ``ok`` → a :class:`Tolerance` keeping only the *model* budget (a bias, a discretisation error, an
  asymptotic remainder): the statistical part of old tolerances ("4 SE", "1.95/√n") is now the interval at α;
* "≤ bound" on a distance → ``at_most(absolute=budget)`` with ``theory = 0``; "≥ 0.9 of the runs" →
  ``above(0.9)`` with ``theory = 1``; an ordering or a sign → ``above(0.0)`` / ``below(0.0)`` on a difference.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, NoReturn

from ..analysis.stats import VERDICTS, Estimate, Evidence, equivalence
from ..errors import ConfigError

PAPERS = {
    "J": "Jacot, Ged, Şimşek, Hongler, Gabriel — Saddle-to-saddle dynamics in deep linear networks",
    "C": "Corlouer, Semler, Strang, Gietelink Oldenziel (2026) — SGD in the saddle-to-saddle regime",
    "Z": "Ziyin, Li, Ueda — Noise balance and stationary distribution of SGD",
    "S": "Saxe, McClelland, Ganguli (2014) — exact solutions of deep linear network learning",
    "PF": "Pesme, Flammarion (2023) — Saddle-to-saddle dynamics in diagonal linear networks",
    "W": "Woodworth et al. (2020) — Kernel and rich regimes in overparametrized models",
    "CE": "Cohen, Kaur, Li, Kolter, Talwalkar (2021) — Gradient descent on neural networks typically occurs at the "
          "edge of stability",
    "D": "Dominé et al. (2025) — From lazy to rich: exact learning dynamics in deep linear networks (with Braun et "
         "al. 2022)",
}
KINDS = ("measured", "theory", "beyond")
SOURCES = ("paper", "derived")
SIDES = ("within", "at_most", "at_least")
DEFAULT_ALPHA = 0.01
_SLUG = re.compile(r"[A-Za-z0-9_.\-]+")


def _fail(owner: str, name: str, value, allowed: str) -> NoReturn:
    raise ConfigError(f"{owner}.{name}", value, allowed)


@dataclass(frozen=True)
class Tolerance:
    """Where the estimand must lie for a claim to hold, and the row's false-fail rate ``alpha``.

    ``side``: ``within`` (``|x − θ| ≤ δ``), ``at_most`` (``x ≤ θ + δ``) or ``at_least`` (``x ≥ θ − δ``), with
    ``δ = max(absolute, relative·|θ|)``; or, with a ``threshold`` c, the band ``x ≤ c`` (``at_most``) or ``x ≥ c``
    (``at_least``) whatever θ. ``alpha``: the probability that a correct theory fails (the one-sided level of the
    bounds); ``why``: where the budget comes from (a bias measured in checks.md, a discretisation order, …).
    A zero budget is a pure test of θ: it can fail or be inconclusive, never hold."""

    side: str
    why: str
    absolute: float = 0.0
    relative: float = 0.0
    threshold: float | None = None
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self):
        if self.side not in SIDES:
            _fail("Tolerance", "side", self.side, ", ".join(SIDES))
        if not (isinstance(self.why, str) and self.why.strip()):
            _fail("Tolerance", "why", self.why, "a non-empty reason for the budget")
        for name in ("absolute", "relative"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                _fail("Tolerance", name, getattr(self, name), "a finite number ≥ 0")
        if self.threshold is not None and (self.side == "within" or self.absolute or self.relative
                                           or not math.isfinite(self.threshold)):
            _fail("Tolerance", "threshold", self.threshold, "a finite threshold, only with side at_most/at_least "
                  "and no absolute/relative budget")
        if not 0.0 < self.alpha < 0.5:
            _fail("Tolerance", "alpha", self.alpha, "a false-fail rate 0 < alpha < 0.5")

    @classmethod
    def within(cls, *, absolute=0.0, relative=0.0, alpha=DEFAULT_ALPHA, why: str) -> Tolerance:
        return cls("within", why, float(absolute), float(relative), alpha=alpha)

    @classmethod
    def at_most(cls, *, absolute=0.0, relative=0.0, alpha=DEFAULT_ALPHA, why: str) -> Tolerance:
        return cls("at_most", why, float(absolute), float(relative), alpha=alpha)

    @classmethod
    def at_least(cls, *, absolute=0.0, relative=0.0, alpha=DEFAULT_ALPHA, why: str) -> Tolerance:
        return cls("at_least", why, float(absolute), float(relative), alpha=alpha)

    @classmethod
    def above(cls, threshold: float, *, alpha=DEFAULT_ALPHA, why: str) -> Tolerance:
        return cls("at_least", why, threshold=float(threshold), alpha=alpha)

    @classmethod
    def below(cls, threshold: float, *, alpha=DEFAULT_ALPHA, why: str) -> Tolerance:
        return cls("at_most", why, threshold=float(threshold), alpha=alpha)

    def band(self, theory: float) -> tuple[float, float]:
        """The interval ``(lo, hi)`` the estimand must lie in (``nan`` edges when θ is needed and is NaN)."""
        if self.threshold is not None:
            return (self.threshold, math.inf) if self.side == "at_least" else (-math.inf, self.threshold)
        d = max(self.absolute, self.relative * abs(theory))
        lo = theory - d if self.side in ("within", "at_least") else -math.inf
        hi = theory + d if self.side in ("within", "at_most") else math.inf
        return lo, hi

    def __str__(self) -> str:
        if self.threshold is not None:
            rule = f"x {'≥' if self.side == 'at_least' else '≤'} {self.threshold:g}"
        else:
            parts = [f"{self.absolute:g}"] * bool(self.absolute) + [f"{100 * self.relative:g} % of |θ|"] * bool(
                self.relative)
            d = "0" if not parts else parts[0] if len(parts) == 1 else f"max({parts[0]}, {parts[1]})"
            rule = {"within": "|x − θ|", "at_most": "x − θ", "at_least": "θ − x"}[self.side] + f" ≤ {d}"
        return f"{rule} (whole {100 * (1 - 2 * self.alpha):g} % interval; false-fail rate α = {self.alpha:g}: {self.why})"


def setting(**params) -> str:
    """The setting part of a claim id: ``setting(depth=2, T=0.1)`` → ``"depth=2, T=0.1"`` (numbers by ``:g``)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One row of the claims table; ``evidence`` and ``verdict`` are computed (module docstring)."""

    experiment: str
    key: str
    setting: str = ""
    paper: str
    claim: str
    quantity: str
    theory: float
    estimate: Estimate
    tolerance: Tolerance
    kind: str
    source: str
    note: str = ""
    evidence: Evidence = field(init=False)
    verdict: str = field(init=False)

    def __post_init__(self):
        if isinstance(self.setting, Mapping):
            object.__setattr__(self, "setting", setting(**self.setting))
        self._validate()
        band = self.tolerance.band(self.theory)
        if math.isfinite(self.theory) and not band[0] <= self.theory <= band[1]:
            _fail("Claim", "theory", self.theory, f"a value inside its own tolerance band {band} ({self.id})")
        verdict, ev = equivalence(self.estimate, self.theory, band, self.tolerance.alpha)
        if self.kind == "measured" and ev.upper - ev.lower == 0:
            _fail("Claim", "estimate", self.estimate, f"a measured row ({self.id}) has an uncertainty > 0: build it "
                  "from the replicas, or give a deterministic number its numerical error, Estimate.exact(v, bound)")
        object.__setattr__(self, "evidence", ev)
        object.__setattr__(self, "verdict", verdict)

    def _validate(self):
        for name in ("experiment", "key"):
            if not (isinstance(getattr(self, name), str) and _SLUG.fullmatch(getattr(self, name))):
                _fail("Claim", name, getattr(self, name), "a non-empty slug of letters, digits, '_', '.', '-'")
        for name, allowed in (("paper", PAPERS), ("kind", KINDS), ("source", SOURCES)):
            if getattr(self, name) not in allowed:
                _fail("Claim", name, getattr(self, name), ", ".join(allowed))
        for name in ("setting", "claim", "quantity", "note"):
            v = getattr(self, name)
            if not isinstance(v, str) or "\n" in v or (name in ("claim", "quantity") and not v.strip()):
                _fail("Claim", name, v, "one line of text" + (" (not empty)" if name in ("claim", "quantity") else ""))
        if not isinstance(self.estimate, Estimate):
            _fail("Claim", "estimate", self.estimate, "a dlnlab.analysis.stats.Estimate")
        if not isinstance(self.tolerance, Tolerance):
            _fail("Claim", "tolerance", self.tolerance, "a Tolerance")
        if not isinstance(self.theory, int | float):
            _fail("Claim", "theory", self.theory, "a number (nan for a threshold-only claim)")

    @property
    def id(self) -> str:
        return "/".join([self.experiment, self.key] + [self.setting] * bool(self.setting))

    @property
    def value(self) -> float:
        return self.estimate.value

    @property
    def uncertainty(self) -> float:
        return self.estimate.se

    def to_dict(self) -> dict:
        """The flat row written to ``claims.csv`` and ``result.json`` (the evidence included, so that a reader
        can judge it again)."""
        e, t, ev = self.estimate, self.tolerance, self.evidence
        band = t.band(self.theory)
        return {"id": self.id, "experiment": self.experiment, "key": self.key, "setting": self.setting,
                "paper": self.paper, "claim": self.claim, "quantity": self.quantity, "kind": self.kind,
                "source": self.source, "theory": self.theory, "value": e.value, "uncertainty": e.se, "dof": e.dof,
                "n": e.n, "method": e.method, "alpha": t.alpha, "lower": ev.lower, "upper": ev.upper,
                "sdd_lower": ev.sdd_lower, "sdd_upper": ev.sdd_upper, "band_lower": band[0], "band_upper": band[1],
                "tolerance": str(t), "tolerance_side": t.side, "tolerance_absolute": t.absolute,
                "tolerance_relative": t.relative, "tolerance_threshold": t.threshold, "why": t.why,
                "verdict": self.verdict, "note": self.note}

    @classmethod
    def from_dict(cls, row: Mapping) -> Claim:
        """A row of :meth:`to_dict` (from JSON, or CSV strings) judged again from its recorded evidence; raises if
        its recorded verdict or id disagrees."""
        num = lambda k: float(row[k]) if row[k] not in ("", None) else math.nan
        alpha = num("alpha")
        threshold = num("tolerance_threshold")
        tol = Tolerance(row["tolerance_side"], row["why"], num("tolerance_absolute"), num("tolerance_relative"),
                        None if math.isnan(threshold) else threshold, alpha)
        ev = tuple(num(k) for k in ("lower", "upper", "sdd_lower", "sdd_upper"))
        est = Estimate.recorded(num("value"), num("uncertainty"), num("dof"), int(float(row["n"])), row["method"],
                                alpha, ev)
        c = cls(experiment=row["experiment"], key=row["key"], setting=row["setting"], paper=row["paper"],
                claim=row["claim"], quantity=row["quantity"], theory=num("theory"), estimate=est, tolerance=tol,
                kind=row["kind"], source=row["source"], note=row["note"])
        if (c.verdict, c.id) != (row["verdict"], row["id"]):
            key = "verdict" if c.verdict != row["verdict"] else "id"
            raise ConfigError(f"row[{key!r}]", row[key], f"{getattr(c, key)!r}, what the row's evidence gives (claims "
                                                         f"row {row['id']!r}): verdicts are computed, not written")
        return c


class Tally(NamedTuple):
    """Counts of a claims table: ``counts[kind][verdict]``; ``expected_false_fails`` = Σα over the measured rows
    that were judged (not ``not applicable``): the number of fails expected if every theory were exact;
    ``inconclusive``: the ids of inconclusive rows."""

    counts: dict
    expected_false_fails: float
    inconclusive: tuple


def tally(claims: Iterable[Claim]) -> Tally:
    """Counts by kind and verdict, the expected number of false fails, the inconclusive rows; ids must be unique."""
    claims = list(claims)
    dup = sorted(i for i, k in Counter(c.id for c in claims).items() if k > 1)
    if dup:
        raise ConfigError("claims", f"claims with repeated ids {', '.join(dup)}", "claims with unique ids")
    counts = {k: dict.fromkeys(VERDICTS, 0) for k in KINDS}
    for c in claims:
        counts[c.kind][c.verdict] += 1
    eff = sum(c.tolerance.alpha for c in claims if c.kind == "measured" and c.verdict != "not applicable")
    return Tally(counts, eff, tuple(c.id for c in claims if c.verdict == "inconclusive"))


__all__ = ["DEFAULT_ALPHA", "KINDS", "PAPERS", "SIDES", "SOURCES", "VERDICTS", "Claim", "Tally", "Tolerance",
           "setting", "tally"]
