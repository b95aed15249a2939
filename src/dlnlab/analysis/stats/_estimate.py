"""An estimate of one simulated quantity with the sampling law of its error, giving confidence bounds at any level.

Every estimator of :mod:`dlnlab.analysis.stats` returns an :class:`Estimate`: the value, a one-sigma scale ``se``
for display, the degrees of freedom (Student-t laws only) or the sample size, and a *law* — a small frozen object
whose ``bounds(value, alpha)`` gives the one-sided ``1 − α`` lower and upper confidence bounds of the estimand::

    P(estimand < lower) ≤ α   and   P(estimand > upper) ≤ α      (each side separately)

so ``[lower, upper]`` at ``α`` is a two-sided interval at level ``1 − 2α``. The laws:

* :class:`StudentLaw` — ``value ∓ t_{1−α, ν}·se`` (batch means over ``G`` groups: ``ν = G − 1``; exact when the
  group statistics are i.i.d. normal).
* :class:`WilsonLaw` — the Wilson score bounds of a binomial fraction at ``z = Φ⁻¹(1 − α)``.
* :class:`BootstrapLaw` — the ``α`` and ``1 − α`` quantiles of bootstrap replicates (percentile method).
* :class:`KSLaw` — ``D ∓ q_α``: ``q_α`` bounds ``sup|F_n − F|`` with probability ``1 − α`` (exact Kolmogorov law).
* :class:`ExactLaw` — a deterministic number with a hard numerical error bound (``0`` for closed forms).
* :class:`RecordedLaw` — an estimate read back from a claims table: only the evidence it was judged on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
from scipy import special, stats

from ...config import Interval
from ...errors import ConfigError

ALPHA = Interval(Real, 0, 0.5, closed="neither")  # a one-sided false-fail rate

ONE_SIGMA = float(special.ndtr(-1.0))  # 0.158655…: the one-sided tail at one standard deviation


@dataclass(frozen=True)
class StudentLaw:
    """``(value − estimand)/se ~ t_ν``: bounds ``value ∓ t_{1−α, ν}·se``."""

    se: float
    dof: float
    name = "t"

    def bounds(self, value, alpha):
        h = -float(special.stdtrit(self.dof, alpha)) * self.se  # t_{1−α, ν}
        return value - h, value + h


@dataclass(frozen=True)
class WilsonLaw:
    """``k`` successes in ``n`` independent trials: the Wilson score bounds at ``z = Φ⁻¹(1 − α)``,
    ``(k + z²/2 ∓ z·√(k(n − k)/n + z²/4)) / (n + z²)``. They lie in ``[0, 1]`` and have positive width at
    ``k = 0`` and ``k = n``, unlike the binomial SE ``√(p(1 − p)/n)``."""

    k: int
    n: int
    name = "wilson"

    def bounds(self, value, alpha):
        lo, hi = wilson_bounds(self.k, self.n, alpha)
        return float(lo), float(hi)


@dataclass(frozen=True, eq=False)
class BootstrapLaw:
    """Percentile bootstrap: bounds are the ``α`` and ``1 − α`` quantiles (inverted CDF, no interpolation, so
    ``inf`` replicates are kept) of the sorted ``replicates``."""

    replicates: np.ndarray = field(repr=False)
    name = "bootstrap"

    def bounds(self, value, alpha):
        r = self.replicates  # sorted; the inverted-CDF p-quantile of B values is r[⌈pB⌉ − 1]
        b = r.size
        return float(r[max(math.ceil(alpha * b - 1e-9) - 1, 0)]), float(r[math.ceil((1.0 - alpha) * b - 1e-9) - 1])


@dataclass(frozen=True)
class KSLaw:
    """KS distance ``D = sup|F_n − F|`` of ``n`` samples to a continuous CDF ``F``, read as an estimate of the
    distance ``d = sup|F_true − F|`` of the sampled law. By the triangle inequality ``|D − d| ≤ sup|F_n − F_true|``,
    whose law is Kolmogorov's (``scipy.stats.kstwo``, exact for every ``n``), so ``D ∓ q_α`` with
    ``q_α = kstwo.isf(α, n)`` holds with probability ``≥ 1 − α`` on each side — and on both sides at once.
    Two samples (``n2``): ``|D − d| ≤ sup|F_1n − F_1| + sup|F_2m − F_2|``, bounded by ``q_{α/2}(n) + q_{α/2}(m)``
    (union bound; conservative)."""

    n: int
    n2: int = 0
    name = "ks"

    def spread(self, alpha):
        if self.n2:
            return kstwo_isf(alpha / 2, self.n) + kstwo_isf(alpha / 2, self.n2)
        return kstwo_isf(alpha, self.n)

    def bounds(self, value, alpha):
        q = self.spread(alpha)
        return value - q, value + q


@dataclass(frozen=True)
class ExactLaw:
    """A deterministic number (a closed form, a quadrature, an ODE solve) known to within ``± bound`` at every
    level (a numerical error bound, not a sampling error)."""

    bound: float = 0.0
    name = "exact"

    def bounds(self, value, alpha):
        return value - self.bound, value + self.bound


@dataclass(frozen=True)
class RecordedLaw:
    """The evidence a claim was judged on, read back from a claims table (see ``stats.Evidence``): usable only
    at the recorded ``alpha``. ``method`` is the law the estimate had when it was judged."""

    method: str
    alpha: float
    evidence: tuple
    name = "recorded"

    def bounds(self, value, alpha):
        raise ConfigError("alpha", alpha, f"the recorded alpha = {self.alpha!r}: a recorded estimate keeps only the "
                                          "evidence it was judged on (Claim.evidence); rebuild the estimate from the "
                                          "data for other levels")


@dataclass(frozen=True)
class Estimate:
    """A simulated (or computed) number with the law of its error.

    ``value``: the estimate; ``se``: a one-sigma scale for tables (the t-law's standard error; for the other laws
    half the width of the one-sigma interval ``bounds(Φ(−1))``); ``dof``: Student-t degrees of freedom (nan for
    the other laws); ``n``: the independent units behind it (groups, replicas, samples); ``law``: gives the
    confidence bounds. Build one with an estimator of :mod:`dlnlab.analysis.stats` or :meth:`student` /
    :meth:`exact`."""

    value: float
    se: float
    dof: float
    n: int
    law: object = field(compare=False)

    @property
    def method(self) -> str:
        return self.law.method if isinstance(self.law, RecordedLaw) else self.law.name

    def bounds(self, alpha: float) -> tuple[float, float]:
        """One-sided ``1 − α`` lower and upper confidence bounds of the estimand."""
        alpha = ALPHA.check("alpha", alpha)
        return self.law.bounds(self.value, alpha)

    def interval(self, level: float) -> tuple[float, float]:
        """Two-sided confidence interval at ``level`` (equal tails: ``bounds((1 − level)/2)``)."""
        return self.bounds((1.0 - level) / 2.0)

    @classmethod
    def student(cls, value: float, se: float, dof: float, n: int | None = None) -> Estimate:
        """``value ± se`` with a Student-t law of ``dof`` degrees of freedom (e.g. a regression slope: ``n − 2``)."""
        if not se >= 0:
            raise ConfigError("se", se, "a standard error ≥ 0")
        if not dof >= 1:
            raise ConfigError("dof", dof, "degrees of freedom ≥ 1")
        return cls(float(value), float(se), float(dof), int(dof + 1 if n is None else n), StudentLaw(float(se), dof))

    @classmethod
    def exact(cls, value: float, bound: float = 0.0) -> Estimate:
        """A deterministic number, exact to within ``± bound`` (its numerical error; 0 for a closed form)."""
        if not bound >= 0:
            raise ConfigError("bound", bound, "a numerical error bound ≥ 0")
        return cls(float(value), float(bound), math.nan, 1, ExactLaw(float(bound)))

    @classmethod
    def recorded(cls, value, se, dof, n, method: str, alpha: float, evidence: tuple) -> Estimate:
        """An estimate read back from a claims table, with the evidence (``stats.Evidence``) it was judged on."""
        return cls(float(value), float(se), float(dof), int(n), RecordedLaw(method, float(alpha), tuple(evidence)))


def from_law(value: float, law, n: int) -> Estimate:
    """An :class:`Estimate` with a non-t ``law``; ``se`` is half the width of its one-sigma interval."""
    lo, hi = law.bounds(float(value), ONE_SIGMA)
    return Estimate(float(value), (hi - lo) / 2.0, math.nan, int(n), law)


@functools.lru_cache(maxsize=4096)
def kstwo_isf(alpha: float, n: int) -> float:
    """``q`` with ``P(D_n > q) = α`` for Kolmogorov's law at sample size ``n`` (cached: the inversion is slow)."""
    return float(stats.kstwo.isf(alpha, n))


def wilson_bounds(k, n, alpha):
    """Wilson score one-sided ``1 − α`` bounds of a fraction ``k/n`` (vectorised over ``k``, ``n``)."""
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    z = float(special.ndtri(1.0 - alpha))
    centre = (k + z * z / 2.0) / (n + z * z)
    half = z / (n + z * z) * np.sqrt(k * (n - k) / n + z * z / 4.0)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
