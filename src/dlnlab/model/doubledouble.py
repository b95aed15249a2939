"""Double-double arithmetic in JAX: a value as an unevaluated sum ``hi + lo`` of two float64 arrays, ``|lo| ≤
ulp(hi)/2``, good to ~1e-32 relative (Dekker 1971; Shewchuk 1997; the ``dd`` operations of Hida, Li & Bailey's
QD library, "sloppy" addition).

:class:`DD` overloads ``+``, ``-``, ``*``, ``/`` (by a float64 array) and ``@`` with float64 arrays and other
:class:`DD` values and has ``.T``, so a formula written for arrays — e.g. :func:`dlnlab.model.gradients.full_gradient`
— runs unchanged in double-double when its inputs are wrapped (:func:`dlnlab.model.gradients.compensated_gradient`).
Why: a sum of O(1) terms whose result is tiny (the gradient along a not yet learned mode, ~σ^(L−1), once another
mode is learned) has an absolute rounding error ~1e-16 in float64 but ~1e-32 here.

Caveats: the error-free transformations need IEEE float64 rounding with no contraction of ``a·b + c`` into one
fused multiply-add and no reassociation. XLA's CPU backend keeps them (tests/model/test_doubledouble.py checks
:func:`two_prod` and :func:`two_sum` exactly against rational arithmetic on the default backend; run it on a GPU
before relying on one). Matrix products form every elementwise product (an ``m × k × n`` intermediate) and sum over
``k`` pairwise: ~20× the work of a float64 product and ``k`` times its memory, meant for small matrices. Float64
values only (``hi`` and ``lo`` of one dtype); overflow and non-finite values are not handled specially.
"""

from __future__ import annotations

import jax.numpy as jnp

_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitter for float64's 53-bit significand


def two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a, b):
    """:func:`two_sum` for ``|a| ≥ |b|`` (Dekker): 3 operations."""
    s = a + b
    return s, b - (s - a)


def _split(a):
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """``(p, e)`` with ``p = fl(a·b)`` and ``a·b = p + e`` exactly (Dekker, Veltkamp's split; no FMA needed)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


class DD:
    """A double-double array ``hi + lo`` (module docstring). ``DD(x)`` wraps a float64 array exactly (``lo`` is then
    ``None``, read as zero: the operations skip its terms)."""

    __slots__ = ("hi", "lo")
    __array_priority__ = 1000  # NumPy arrays defer to DD's reflected operators

    def __init__(self, hi, lo=None):
        self.hi = jnp.asarray(hi)
        self.lo = None if lo is None else jnp.asarray(lo)

    @staticmethod
    def _of(x) -> DD:
        return x if isinstance(x, DD) else DD(x)

    @property
    def value(self):
        """The nearest float64 array."""
        return self.hi if self.lo is None else self.hi + self.lo

    @property
    def shape(self):
        return self.hi.shape

    @property
    def dtype(self):
        return self.hi.dtype

    @property
    def T(self) -> DD:
        return DD(self.hi.T, None if self.lo is None else self.lo.T)

    def __neg__(self) -> DD:
        return DD(-self.hi, None if self.lo is None else -self.lo)

    def __add__(self, other) -> DD:
        o = DD._of(other)
        s, e = two_sum(self.hi, o.hi)
        if self.lo is None or o.lo is None:
            lo = self.lo if o.lo is None else o.lo
            return DD(*_fast_two_sum(s, e if lo is None else e + lo))
        t, f = two_sum(self.lo, o.lo)
        s, e = _fast_two_sum(s, e + t)
        return DD(*_fast_two_sum(s, e + f))

    __radd__ = __add__

    def __sub__(self, other) -> DD:
        return self + (-DD._of(other))

    def __rsub__(self, other) -> DD:
        return DD._of(other) + (-self)

    def __mul__(self, other) -> DD:
        o = DD._of(other)
        p, e = two_prod(self.hi, o.hi)
        if o.lo is not None:
            e = e + self.hi * o.lo
        if self.lo is not None:
            e = e + self.lo * o.hi
        return DD(*_fast_two_sum(p, e))

    __rmul__ = __mul__

    def __truediv__(self, b) -> DD:
        """Division by a float64 array or scalar ``b``: one Newton correction of ``hi / b``."""
        q = self.hi / b
        p, e = two_prod(q, jnp.asarray(b, self.dtype))
        r = (self.hi - p) - e
        return DD(*_fast_two_sum(q, (r if self.lo is None else r + self.lo) / b))

    def __matmul__(self, other) -> DD:
        return _matmul(self, DD._of(other))

    def __rmatmul__(self, other) -> DD:
        return _matmul(DD._of(other), self)


def _matmul(a: DD, b: DD) -> DD:
    """``a @ b`` for 2-D operands: every product ``a_ik b_kj`` in double-double, summed over ``k`` pairwise (a few
    wide operations rather than ``k`` narrow ones: on XLA's CPU runtime, measured ~3× faster at k = 4)."""
    if a.hi.ndim != 2 or b.hi.ndim != 2:
        raise ValueError(f"DD matmul is for 2-D arrays, got shapes {a.shape} and {b.shape}")
    terms = (DD(a.hi[:, :, None], None if a.lo is None else a.lo[:, :, None])
             * DD(b.hi[None], None if b.lo is None else b.lo[None]))
    hi, lo = terms.hi, terms.lo
    while hi.shape[1] > 1:
        if hi.shape[1] % 2:
            pad = jnp.zeros_like(hi[:, :1])
            hi, lo = jnp.concatenate([hi, pad], 1), jnp.concatenate([lo, pad], 1)
        pair = DD(hi[:, 0::2], lo[:, 0::2]) + DD(hi[:, 1::2], lo[:, 1::2])
        hi, lo = pair.hi, pair.lo
    return DD(hi[:, 0], lo[:, 0])
