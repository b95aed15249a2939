"""[Z]'s diagonal linear networks of any depth and their data, in the library's conventions (model layer).

Model (``noise_balance.md`` §§5–6): scalar input ``x ~ N(0, λ)``, label ``y = s x + ε``, ``ε ~ N(0, σ_ε²)``;
``d`` paths ``v_i = Π_{j=1}^{L} u_i^{(j)}`` of ``L`` factors each ([Z]'s "depth D" is ``L − 1``); output
``v = Σ_i v_i``; per-sample loss ``ℓ = ½(v x − y)² + (ρ/2)‖θ‖²`` (½-loss; [Z]'s loss has no ½ — convert
with :meth:`DiagonalModel.from_ziyin`, which uses :func:`dlnlab.conventions.from_ziyin`).

Every per-sample gradient is ``ξ ∇_θ v`` with ``ξ = ∂ℓ/∂v = (v x − y) x`` (rank-one noise): ``E ξ = β₁v − β₂``,
``Var ξ = g(v)`` (:class:`DataConstants`). The simulator is :mod:`dlnlab.engines.diagonal`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import jax.numpy as jnp
import numpy as np

from .. import conventions
from ..config import FIELDS, Options

# ---------------------------------------------------------------------------------------------------------
# Data constants


@dataclass(frozen=True)
class DataConstants:
    """[Z]'s data constants for scalar ``x, y`` (identical numbers in [Z]'s and our units).

    ``ξ = ∂ℓ/∂v = v x² − x y`` (½-loss) has ``E ξ = β₁v − β₂`` and ``Var ξ = g(v)``.
    """

    beta1: float
    beta2: float
    alpha1: float
    alpha2: float
    alpha3: float

    @classmethod
    def single_mode(cls, input_variance: float = 1.0, s: float = 1.0, label_noise: float = 1.0) -> DataConstants:
        """``x ~ N(0, λ)``, ``y = s x + ε``, ``ε ~ N(0, σ_ε²)``: ``(λ, λs, 2λ², 2λ²s, 2λ²s² + λσ_ε²)``."""
        lam, s, sig = float(input_variance), float(s), float(label_noise)
        return cls(lam, lam * s, 2 * lam**2, 2 * lam**2 * s, 2 * lam**2 * s**2 + lam * sig**2)

    @classmethod
    def reference(cls) -> DataConstants:
        """The reference data of ``checks.md`` §E (λ = s = σ_ε = 1): ``(1, 1, 2, 2, 3)``, ``Δ = 2``, ``T_c = 1/3``."""
        return cls.single_mode(1.0, 1.0, 1.0)

    @property
    def det(self) -> float:
        """``Δ = α₁α₃ − α₂² ≥ 0``."""
        return self.alpha1 * self.alpha3 - self.alpha2**2

    def g(self, v):
        """``g(v) = α₁v² − 2α₂v + α₃ = Var[∂ℓ/∂v]``."""
        v = np.asarray(v, np.float64)
        return self.alpha1 * v**2 - 2 * self.alpha2 * v + self.alpha3

    def log_g(self, v):
        """``ln g(v)``, overflow-free for huge ``|v|`` (``g = α₁(v − α₂/α₁)² + Δ/α₁``)."""
        v = np.asarray(v, np.float64)
        v0 = self.alpha2 / self.alpha1
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            return np.logaddexp(np.log(self.alpha1) + 2 * np.log(np.abs(v - v0)), np.log(self.det / self.alpha1))

    def mean_grad(self, v):
        """``E ∂ℓ/∂v = β₁v − β₂``."""
        return self.beta1 * np.asarray(v, np.float64) - self.beta2

    @property
    def minimiser(self) -> float:
        """``v* = β₂/β₁``."""
        return self.beta2 / self.beta1

    @property
    def g_min(self) -> float:
        """``min_v g = Δ/α₁``."""
        return self.det / self.alpha1

    def T_crit(self, weight_decay: float = 0.0) -> float:
        """Critical temperature of the two-layer (L = 2) model, ``T_c = (β₂ − ρ)/α₃`` ([Z]; our T = [Z]'s T).

        ``η/B < 2T_c`` is needed to learn. Returns 0 when ``β₂ ≤ ρ`` (nothing is learned at any T > 0)."""
        return max(self.beta2 - weight_decay, 0.0) / self.alpha3

    def branch(self, sign: int, weight_decay: float = 0.0) -> DataConstants:
        """Constants that give the law of ``|v|`` on the branch ``sgn v = sign``, with weight decay folded in
        as ``xy → xy − ρ`` on the balanced manifold (``noise_balance.md`` §6.2): ``β₂ → sign·β₂ − ρ``,
        ``α₂ → sign·α₂``. (Exact for L = 2; for L ≥ 3 weight decay is handled separately.)"""
        Options(1, -1).check("sign", sign)
        return replace(self, beta2=sign * self.beta2 - weight_decay, alpha2=sign * self.alpha2)

    def as_dict(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "alpha1": self.alpha1, "alpha2": self.alpha2,
                "alpha3": self.alpha3, "det": self.det}


@dataclass(frozen=True)
class DiagonalModel:
    """[Z]'s diagonal linear network with ``n_paths`` paths of ``depth`` factors (L = D + 1), and its data."""

    depth: int = 2  # L: factors per path ([Z]'s D + 1)
    n_paths: int = 1  # d
    input_variance: float = 1.0  # λ = E x²
    s: float = 1.0  # teacher slope: y = s x + ε
    label_noise: float = 1.0  # σ_ε
    weight_decay: float = 0.0  # ρ: (ρ/2)‖θ‖²

    def __post_init__(self):  # the constraints of the [diagonal] config section
        for f in fields(self):
            FIELDS[f"diagonal.{f.name}"].constraint.check(f"diagonal.{f.name}", getattr(self, f.name))

    @classmethod
    def from_ziyin(cls, D: int, d: int = 1, *, k: float = 1.0, sigma: float = 1.0, input_variance: float = 1.0,
                   gamma_z: float = 0.0) -> DiagonalModel:
        """[Z]'s depth-``D`` model on ``y = kx + ε`` (``ε ~ N(0, σ²)``) with weight decay ``γ_Z‖θ‖²``: ``L = D + 1``,
        ``ρ = γ_Z`` (:func:`dlnlab.conventions.from_ziyin`). Step sizes convert as ``η = 2η_Z``, ``B = S``."""
        _, _, L = conventions.from_ziyin(1.0, 1, D)
        return cls(depth=L, n_paths=d, input_variance=input_variance, s=k, label_noise=sigma, weight_decay=gamma_z)

    @classmethod
    def from_config(cls, config) -> DiagonalModel:
        """The model of a config's ``[diagonal]`` section."""
        return cls(**{f.name: getattr(config.diagonal, f.name) for f in fields(cls)})

    @property
    def constants(self) -> DataConstants:
        return DataConstants.single_mode(self.input_variance, self.s, self.label_noise)

    @property
    def label_second_moment(self) -> float:
        """``E y² = λs² + σ_ε²``."""
        return self.input_variance * self.s**2 + self.label_noise**2

    def population_loss(self, v, sum_sq=0.0):
        """``𝓛 = ½(β₁v² − 2β₂v + E y²) + (ρ/2)‖θ‖²``."""
        c = self.constants
        v = np.asarray(v, np.float64)
        return 0.5 * (c.beta1 * v**2 - 2 * c.beta2 * v + self.label_second_moment) + 0.5 * self.weight_decay * sum_sq

    def T_crit(self) -> float:
        """``T_c = (β₂ − ρ)/α₃`` of the L = 2 model (``s/(2λs² + σ_ε²)`` for λ = 1, ρ = 0)."""
        return self.constants.T_crit(self.weight_decay)


# ---------------------------------------------------------------------------------------------------------
# Pure single-state functions (JAX; leading batch axes allowed)


def path_values(theta):
    """``v_i = Π_j u_i^{(j)}`` for factors ``theta[..., path, factor]``."""
    return jnp.prod(theta, axis=-1)


def path_gradients(theta):
    """``∂v_i/∂u_i^{(l)} = Π_{j≠l} u_i^{(j)}`` (exact with zeros: prefix × suffix products)."""
    L = theta.shape[-1]
    if L == 1:
        return jnp.ones_like(theta)
    cols = [theta[..., j] for j in range(L)]
    pre, suf = [None] * L, [None] * L
    pre[0], suf[L - 1] = jnp.ones_like(cols[0]), jnp.ones_like(cols[0])
    for j in range(1, L):
        pre[j] = pre[j - 1] * cols[j - 1]
        suf[L - 1 - j] = suf[L - j] * cols[L - j]
    return jnp.stack([pre[j] * suf[j] for j in range(L)], axis=-1)


def minibatch_xi(v, x, y):
    """``ξ̂ = (1/B) Σ_b (v x_b − y_b) x_b`` (``x, y``: trailing batch axis; ``v`` broadcast)."""
    return jnp.mean((v[..., None] * x - y) * x, axis=-1)


def sgd_step(theta, x, y, lr, weight_decay=0.0):
    """One online SGD step ``θ ← θ − η(ξ̂ ∇v + ρθ)`` on the minibatch ``(x, y)``; returns ``(θ', ξ̂)``."""
    v = jnp.sum(path_values(theta), axis=-1)
    xi = minibatch_xi(v, x, y)
    grad = xi[..., None, None] * path_gradients(theta) + weight_decay * theta
    return theta - lr * grad, xi


def population_gradient(theta, c: DataConstants, weight_decay=0.0):
    v = jnp.sum(path_values(theta), axis=-1)
    return (c.beta1 * v - c.beta2)[..., None, None] * path_gradients(theta) + weight_decay * theta


def balanced_factors(v_paths, depth):
    """Balanced factors of path values: ``|u^{(j)}| = |v_i|^{1/L}``, the sign on the first factor."""
    v = np.asarray(v_paths, np.float64)
    a = np.abs(v) ** (1.0 / depth)
    theta = np.repeat(a[..., None], depth, axis=-1)
    theta[..., 0] *= np.where(v < 0, -1.0, 1.0)
    return theta
