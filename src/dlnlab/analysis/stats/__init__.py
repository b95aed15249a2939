"""Estimators and the verdict rule used by every experiment (one home: issue 13 item 5, issue 14 item 4).

Conventions (``checks.md`` §0 and Errata 1):

* **The independent unit is a replica.** Samples along one trajectory are correlated; uncertainties come from
  independent replicas only.
* **Estimates carry their law** (:class:`Estimate`): confidence bounds at any level, never "k standard errors"
  read as Gaussian. Batch means over ``G`` groups are Student-t with ``G − 1`` dof (:func:`group_estimate`);
  medians and quantiles use the bootstrap (:func:`bootstrap_quantile`); fractions use Wilson (:func:`wilson`);
  distances between laws use the exact Kolmogorov law (:func:`ks_1samp`, :func:`ks_2samp`, :func:`ks_critical`);
  deterministic numbers carry a numerical error bound (:meth:`Estimate.exact`).
* **No simulated number has uncertainty 0**: every estimator gives a positive width (Wilson at ``k = 0`` too).
* **Agreement is equivalence** (:func:`equivalence`): a claim holds only if the whole confidence interval lies
  in the tolerance band; it fails only in a way a correct theory would with probability ``≤ α``; otherwise it is
  inconclusive (the smallest detectable difference exceeds the tolerance).
* **Tail indices** (:func:`hill_index`): the Hill estimator above a fixed threshold, batch means over replicas,
  against the theory law's index at that threshold (:func:`hill_index_of`), not its asymptote.
* **First-hit times** (:func:`first_hit_time`): ``NaN`` means never hit within the record, counted separately
  (``FirstHit.n_never``); medians of such times treat ``NaN`` as right-censored
  (``bootstrap_quantile(..., censored=True)``), never drop them.
"""

from ._equivalence import VERDICTS, Evidence, decide, equivalence, evidence
from ._estimate import (
    BootstrapLaw,
    Estimate,
    ExactLaw,
    KSLaw,
    RecordedLaw,
    StudentLaw,
    WilsonLaw,
    wilson_bounds,
)
from ._estimators import bootstrap_quantile, group_estimate, ols_slope, wilson
from ._hits import FirstHit, first_hit_time
from ._ks import EXACT_MAX_N, KSTest, ks_1samp, ks_2samp, ks_critical
from ._tails import hill_index, hill_index_of

__all__ = [
    "EXACT_MAX_N",
    "VERDICTS",
    "BootstrapLaw",
    "Estimate",
    "Evidence",
    "ExactLaw",
    "FirstHit",
    "KSLaw",
    "KSTest",
    "RecordedLaw",
    "StudentLaw",
    "WilsonLaw",
    "bootstrap_quantile",
    "decide",
    "equivalence",
    "evidence",
    "first_hit_time",
    "group_estimate",
    "hill_index",
    "hill_index_of",
    "ks_1samp",
    "ks_2samp",
    "ks_critical",
    "ols_slope",
    "wilson",
    "wilson_bounds",
]
