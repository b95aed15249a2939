"""Chebyshev-panel quadrature: the one engine behind the stationary laws (one mode, and diagonal networks).

A variable ``y`` is cut into panels ``[e_p, e_{p+1}]``. On each panel a function known at ``n`` Chebyshev nodes
is replaced by its interpolating polynomial (degree ``n − 1``), which is integrated and evaluated exactly, so a
smooth integrand is integrated to near round-off (spectral accuracy) on panels a few of its scales wide.

* :class:`ChebyshevRule` — the nodes on ``[−1, 1]`` and the three linear maps of their values: to Chebyshev
  coefficients, to the values of the antiderivative (vanishing at −1) at the nodes, and to the integral over
  ``[−1, 1]``. Two families: :func:`first_kind_rule` (interior nodes ``cos(π(k + ½)/n)``, coefficients by a
  discrete cosine transform, Fejér weights) and :func:`lobatto_rule` (nodes ``cos(πk/(n − 1))`` ascending, ends
  included, so values at panel edges are nodes).
* :class:`Panels` — the panel geometry (``edges``, ``mid``, ``half``, ``nodes``), :meth:`Panels.locate`, the
  antiderivative of node values on each panel (as node values or as coefficients), interpolation, and
  :meth:`Panels.cumulative` (the antiderivative across panels).
* :func:`anchored_sums` — partial sums of panel integrals with zero at one chosen edge, accumulated *outward*
  from it, so an integrand that grows exponentially away from the anchor keeps full relative precision.
* :func:`graded_edges` and :func:`refined_edges` — panel layouts; :func:`by_region` — evaluate an array inside
  ``[lo, hi]`` with one function and below/above it with others (the analytic tails beyond the panels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as _cheb


@dataclass(frozen=True, eq=False)
class ChebyshevRule:
    """``n`` nodes ``t_j`` on ``[−1, 1]`` and linear maps of values ``f_j = f(t_j)`` (last axis of ``values``):
    ``to_coefs @ f`` are the Chebyshev coefficients of the interpolant; ``f @ integrate`` are the values at the
    nodes of its antiderivative that vanishes at −1; ``f @ weights`` is its integral over ``[−1, 1]``."""

    nodes: np.ndarray
    to_coefs: np.ndarray
    integrate: np.ndarray
    weights: np.ndarray


def _rule(nodes, to_coefs, weights=None):
    """The rule of ``nodes`` whose values map to Chebyshev coefficients by ``to_coefs``; ``integrate`` (and, if
    not given, ``weights``) follow from the antiderivative of the coefficients."""
    antiderivative = _cheb.chebint(to_coefs, m=1, lbnd=-1, axis=0)
    integrate = _cheb.chebval(nodes, antiderivative)  # (n values, n nodes)
    return ChebyshevRule(nodes, to_coefs, integrate, _cheb.chebval(1.0, antiderivative) if weights is None else weights)


def first_kind_rule(n: int) -> ChebyshevRule:
    """Nodes of the first kind ``t_k = cos(π(k + ½)/n)`` (descending), Fejér's first rule for the weights."""
    theta = np.pi * (np.arange(n) + 0.5) / n
    to_coefs = (2.0 / n) * np.cos(np.outer(np.arange(n), theta))
    to_coefs[0] /= 2.0
    weights = (2.0 / n) * (1.0 - 2.0 * sum(np.cos(2 * k * theta) / (4 * k * k - 1) for k in range(1, n // 2 + 1)))
    return _rule(np.cos(theta), to_coefs, weights)


def lobatto_rule(n: int) -> ChebyshevRule:
    """Chebyshev–Lobatto nodes ``cos(πk/(n − 1))`` in ascending order (``−1`` and ``1`` included)."""
    nodes = np.cos(np.pi * np.arange(n)[::-1] / (n - 1))
    return _rule(nodes, np.linalg.inv(_cheb.chebvander(nodes, n - 1)))


def evaluate(coefs, t):
    """Evaluate the per-point coefficient columns ``coefs`` (``(k, N)``) at ``t`` (``(N,)``) (Clenshaw)."""
    return _cheb.chebval(t, coefs, tensor=False)


def anchored_sums(increments, anchor: int):
    """Values at the ``P + 1`` edges of the running sum of the ``P`` panel ``increments``, zero at edge
    ``anchor``: summed rightward to the right of it and leftward (with a minus sign) to its left."""
    out = np.empty(len(increments) + 1)
    out[anchor] = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        out[anchor + 1:] = np.cumsum(increments[anchor:])
        out[:anchor] = -np.cumsum(increments[:anchor][::-1])[::-1]
    return out


class Panels:
    """Panels with ``edges`` (ascending) and the nodes of ``rule`` on each (``nodes``: shape ``(P, n)``)."""

    def __init__(self, edges, rule: ChebyshevRule):
        self.edges, self.rule = np.asarray(edges, np.float64), rule
        a, b = self.edges[:-1], self.edges[1:]
        self.mid, self.half = (a + b) / 2, (b - a) / 2
        self.nodes = self.mid[:, None] + self.half[:, None] * rule.nodes[None, :]

    def locate(self, y):
        """``(p, t)``: the panel holding each ``y`` (the first or last panel beyond the edges) and the local
        coordinate ``t`` in it, clipped to ``[−1, 1]``."""
        y = np.asarray(y, np.float64)
        p = np.clip(np.searchsorted(self.edges, y, side="right") - 1, 0, len(self.mid) - 1)
        return p, np.clip((y - self.mid[p]) / self.half[p], -1.0, 1.0)

    def antiderivative(self, values):
        """Node values ``(P, n)`` → values at the nodes of the antiderivative vanishing at each panel's left edge."""
        return self.half[:, None] * (values @ self.rule.integrate)

    def antiderivative_coefs(self, values):
        """Node values ``(P, n)`` → Chebyshev coefficients ``(n + 1, P)`` (in the local ``t``) of the
        antiderivative vanishing at each panel's left edge (exact, one degree higher than the interpolant)."""
        coef = self.rule.to_coefs @ values.T
        return _cheb.chebint(coef, m=1, lbnd=-1, axis=0) * self.half[None, :]

    def cumulative(self, values, anchor: int = 0):
        """The antiderivative across panels at every node (``(P, n)``), zero at edge ``anchor``. Needs a rule
        whose last node is ``t = 1`` (:func:`lobatto_rule`), so that a panel's integral is its last value."""
        local = self.antiderivative(values)
        return local + anchored_sums(local[:, -1], anchor)[:-1, None]

    def interpolate(self, values, y):
        """The panel interpolants of node ``values`` (``(P, n)``) at points ``y``."""
        p, t = self.locate(y)
        return evaluate(self.rule.to_coefs @ values[p].T, t)

    def nearest_edge(self, y) -> int:
        return int(np.argmin(np.abs(self.edges - y)))


def graded_edges(centre, w0, lo, hi, growth=1.1, w_max=0.25):
    """Edges from ``lo`` to ``hi`` containing ``centre``, widths ``w0·growth^k`` (capped at ``w_max``) away from it."""
    def side(length):
        out, pos, w = [], 0.0, w0
        while pos < length:
            pos = min(pos + w, length)
            out.append(pos)
            w = min(w * growth, w_max)
        return np.array(out)

    right = centre + side(hi - centre)
    left = centre - side(centre - lo)
    return np.concatenate([left[::-1], [centre], right])


def refined_edges(lo, hi, width, centre=None, fine=None, span=None):
    """Uniform panels of ``width`` on ``[lo, hi]``, refined to width ``fine`` on ``centre ± span``."""
    e = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) / width)) + 1))
    if fine is not None and fine < width:
        a, b = max(lo, centre - span), min(hi, centre + span)
        if b > a:
            f = np.linspace(a, b, int(np.ceil((b - a) / fine)) + 1)
            e = np.union1d(e[(e < a) | (e > b)], f)
    return e


def by_region(y, lo, hi, inside, below, above):
    """``out[i] = inside(y[i])`` for ``lo ≤ y[i] ≤ hi``, ``below(·)`` for ``y < lo``, ``above(·)`` for ``y > hi``
    (each function takes the array of its points; one that has no points is not called)."""
    y = np.asarray(y, np.float64)
    out = np.empty(y.shape)
    for sel, fn in (((y >= lo) & (y <= hi), inside), (y < lo, below), (y > hi, above)):
        if sel.any():
            out[sel] = fn(y[sel])
    return out
