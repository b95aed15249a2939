"""Teacher maps and data: ``M = Σ_α s_α u_α v_αᵀ``, ``x ~ N(0, Σx)`` with ``Σx = V diag(λ) Vᵀ``,
``y = M x + ε``, ``ε ~ N(0, σ_ε² I)``.

``U`` (``d_out × d_out``) and ``V`` (``d_in × d_in``) are full orthogonal bases; their first ``rank``
columns are the teacher's singular vectors and ``λ`` lists the input variance along *every* column of
``V`` (whitened: all ones). Label noise is a per-replica hyper-parameter; online samples are drawn by :meth:`Problem.sample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Config, Options


def spectrum(family: str, rank: int, s_max: float = 1.0, exponent: float = 1.0, ratio: float = 0.5,
             s_min: float | None = None) -> np.ndarray:
    """Singular values ``s_1 ≥ … ≥ s_rank`` of a family: ``power`` ``s_max i^-exponent``, ``geometric``
    ``s_max ratio^(i-1)``, ``linear`` evenly from ``s_max`` to ``s_min`` (default ``s_max/rank``)."""
    Options("power", "geometric", "linear").check("family", family)
    i = np.arange(1, rank + 1, dtype=np.float64)
    if family == "power":
        return s_max * i ** (-exponent)
    if family == "geometric":
        return s_max * ratio ** (i - 1)
    lo = s_max / rank if s_min is None else s_min  # linear
    return np.linspace(s_max, lo, rank)


def random_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Haar-random orthogonal ``n × n`` matrix (QR with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class Teacher:
    """A teacher and its input distribution (NumPy float64 arrays; immutable)."""

    s: np.ndarray  # (n_modes,) singular values, zero-padded to min(d_in, d_out)
    U: np.ndarray  # (d_out, d_out)
    V: np.ndarray  # (d_in, d_in)
    input_variance: np.ndarray  # (d_in,) λ along the columns of V

    @property
    def d_in(self) -> int:
        return self.V.shape[0]

    @property
    def d_out(self) -> int:
        return self.U.shape[0]

    @property
    def n_modes(self) -> int:
        return len(self.s)

    @property
    def M(self) -> np.ndarray:
        k = self.n_modes
        return (self.U[:, :k] * self.s) @ self.V[:, :k].T

    @property
    def input_cov(self) -> np.ndarray:
        return (self.V * self.input_variance) @ self.V.T

    @property
    def input_cov_sqrt(self) -> np.ndarray:
        return (self.V * np.sqrt(self.input_variance)) @ self.V.T

    @property
    def mode_input_variance(self) -> np.ndarray:
        """λ_α for the ``n_modes`` teacher modes."""
        return self.input_variance[: self.n_modes]

    @classmethod
    def from_config(cls, c: Config) -> Teacher:
        t = c.teacher
        k = min(t.d_in, t.d_out)
        if t.spectrum == "explicit":
            s = np.asarray(t.singular_values, dtype=np.float64)
        else:
            s = spectrum(t.spectrum, t.rank, t.s_max, t.exponent, t.ratio, t.s_min)
        s = np.concatenate([s, np.zeros(k - len(s))])
        if t.basis == "identity":
            U, V = np.eye(t.d_out), np.eye(t.d_in)
        else:
            rng = np.random.default_rng(t.seed)
            U, V = random_orthogonal(rng, t.d_out), random_orthogonal(rng, t.d_in)
        lam = np.broadcast_to(np.asarray(t.input_variance, dtype=np.float64), (t.d_in,)).copy()
        return cls(s=s, U=U, V=V, input_variance=lam)


def completion_mask(d_out: int, d_in: int, fraction: float, seed: int) -> np.ndarray:
    """Observed entries for matrix completion: ``round(fraction · d_out · d_in)`` (at least 1) entries drawn
    uniformly without replacement, as a 0/1 float array of shape ``(d_out, d_in)``."""
    n = max(1, round(fraction * d_out * d_in))
    idx = np.random.default_rng(seed).choice(d_out * d_in, size=n, replace=False)
    mask = np.zeros(d_out * d_in)
    mask[idx] = 1.0
    return mask.reshape(d_out, d_in)


@dataclass(frozen=True)
class Dataset:
    """A finite dataset (rows are samples), shared by all replicas of an ensemble.

    With ``whiten=True`` the inputs are transformed so that their empirical covariance ``XᵀX/n`` equals
    ``Σx`` exactly (the fourth moments stay empirical, see ``sgd_noise.md`` §3.2). Labels carry the
    label noise of the *first* stacked value when label noise is stacked (a dataset is fixed data).
    """

    X: np.ndarray  # (n, d_in)
    Y: np.ndarray  # (n, d_out)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @classmethod
    def draw(cls, teacher: Teacher, n: int, label_noise: float, seed: int, whiten: bool = False) -> Dataset:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, teacher.d_in)) @ teacher.input_cov_sqrt
        if whiten:
            C = X.T @ X / n
            evals, evecs = np.linalg.eigh(C)
            X = X @ (evecs / np.sqrt(evals)) @ evecs.T @ teacher.input_cov_sqrt
        Y = X @ teacher.M.T + label_noise * rng.standard_normal((n, teacher.d_out))
        return cls(X=X, Y=Y)
