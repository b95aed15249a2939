"""The SDE of one mode of a deep linear network: drift, diffusion, Itô correction, diffusion peak, escape.

NumPy closed forms of ``sgd_noise.md`` §§4–8 (all "derived" there: only [C]'s abstract was available).
Conventions (``README.md``): ½-loss, online SGD ``(η, B)``, ``t = η k``, Itô SDE, ``T = η/(2B)``,
``D(m) = 2λ²(m − s)² + λσ_ε²``. Signatures say ``input_variance`` for λ and ``depth`` for L.

One mode ``α`` (``s, λ`` its singular value and input variance) on the aligned manifold has per-layer values
``a = (a_1, …, a_L)``, ``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j`` (:func:`dlnlab.conventions.layer_products`).
Per-layer arrays carry the **layer axis first**: ``a`` has shape ``(L, …)``, the trailing axes broadcast (modes,
replicas, grids).

* §5.1 aligned, not necessarily balanced: ``da_l = λπ_l(s − m) dt + sqrt(η/B) π_l sqrt(D(m)) dB`` with **one**
  Brownian motion per mode (rank-one noise covariance ``(η/B) D ππᵀ``);
* §5.2 balanced (``a_l = a``, ``m = a^L``): ``da = λa^{L−1}(s − a^L) dt + sqrt(η/B) a^{L−1} sqrt(D) dB``;
* §5.3 function space with the Itô correction: ``dm = [λK(s − m) + T D πᵀ∇²m π] dt + sqrt(η/B) K sqrt(D) dB``,
  ``K = Σ_l π_l²``; balanced: ``dm = [Lλm^{2−2/L}(s − m) + T L(L−1) m^{3−4/L} D] dt + sqrt(η/B) L m^{2−2/L} sqrt(D) dB``;
* §7 diffusion along a mode ``𝒟_p(m) = c_p (η/B) m^p D(m)``: per-layer ``p = 2 − 2/L`` (``c_p = 1``), function
  space ``p = 4 − 4/L`` (``c_p = L²``); its pre-learning peak ``m* = p s/(p + 2)`` (no label noise) or ``m_−``
  (label noise, when ``σ_ε² ≤ 2λs²/(p(p + 2))``), and the gradient-flow times of the peak and of learning;
* §8 leaving the saddle with noise (``L = 2``) and the collapse temperature ``T_c``;
* the balanced mode as an object, :class:`ModeSDE` (with :func:`resolve_temperature`), and the pieces of its
  zero-flux density shared by the stationary law and the Fokker–Planck solver: :class:`ModeCoordinate` and
  :func:`potential_slope` (``dΦ/dy``).

The stationary laws (§9) are in :mod:`dlnlab.theory.mode_stationary` (exact, by quadrature) and
:mod:`dlnlab.theory.mode_stationary_forms` (closed forms); the time-dependent law in
:mod:`dlnlab.theory.mode_fokker_planck`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from ..config import Interval, Options
from ..conventions import layer_products, mode_noise_var
from ..conventions import temperature as sgd_temperature
from ..errors import ConfigError
from .gradient_flow import mode_time

_POSITIVE = Interval(Real, 0, None, closed="neither")
_NON_NEGATIVE = Interval(Real, 0, None, closed="left")


def _products(a):
    return layer_products(np.asarray(a, np.float64))


# ---------------------------------------------------------------------------------------------------------
# Per-layer coordinates (§5.1, §5.2)


def layer_drift(a, s, input_variance=1.0):
    """Drift of §5.1 for every layer: ``λ π_l (s − m)`` (gradient flow of the per-layer values)."""
    m, pi = _products(a)
    return input_variance * pi * (s - m)


def layer_noise_amplitude(a, s, input_variance, label_noise, lr, batch_size):
    """Coefficient of the mode's single ``dB`` in ``da_l``: ``sqrt(η/B) π_l sqrt(D(m))`` (§5.1)."""
    m, pi = _products(a)
    return np.sqrt(lr / batch_size) * pi * np.sqrt(mode_noise_var(m, s, input_variance, label_noise))


def layer_noise_cov(a, s, input_variance, label_noise, lr, batch_size):
    """Per-unit-time noise covariance of ``a``: ``(η/B) D(m) π πᵀ``, shape ``(L, L, …)`` (rank one)."""
    g = layer_noise_amplitude(a, s, input_variance, label_noise, lr, batch_size)
    return g[:, None] * g[None, :]


def balanced_layer_drift(a, s, input_variance=1.0, depth=2):
    """§5.2: ``λ a^{L−1} (s − a^L) = −V'(a)`` with ``V(a) = λ(a^L − s)²/(2L)``."""
    a = np.asarray(a, np.float64)
    return input_variance * a ** (depth - 1) * (s - a**depth)


def balanced_layer_diffusion(a, s, input_variance, label_noise, lr, batch_size, depth):
    """§5.2 diffusion coefficient (variance per unit time) of the balanced per-layer value: ``(η/B) a^{2L−2} D(a^L)``."""
    a = np.asarray(a, np.float64)
    return lr / batch_size * a ** (2 * depth - 2) * mode_noise_var(a**depth, s, input_variance, label_noise)


def layer_potential(a, s, input_variance=1.0, depth=2):
    """``V(a) = λ (a^L − s)² / (2L)``: the balanced per-layer drift is ``−V'(a)``."""
    a = np.asarray(a, np.float64)
    return input_variance * (a**depth - s) ** 2 / (2 * depth)


def log_layer_drift(a, s, input_variance, label_noise, lr, batch_size):
    """Itô drift of ``y_l = ln a_l`` (``a_l > 0``): ``λ r_l (s − m) − ½ (η/B) r_l² D(m)`` with ``r_l = π_l/a_l``.

    The noise of ``y_l`` is ``sqrt(η/B) r_l sqrt(D) dB``. Balanced: ``r_l = a^{L−2}``."""
    a = np.asarray(a, np.float64)
    m, pi = _products(a)
    r = pi / a
    return input_variance * r * (s - m) - 0.5 * lr / batch_size * r**2 * mode_noise_var(m, s, input_variance,
                                                                                          label_noise)


# ---------------------------------------------------------------------------------------------------------
# Function space (§5.3)


def gf_drift(m, s, input_variance=1.0, depth=2):
    """Gradient-flow part of the balanced function-space drift: ``L λ m^{2−2/L} (s − m)`` (``m ≥ 0``)."""
    m = np.asarray(m, np.float64)
    return depth * input_variance * m ** (2.0 - 2.0 / depth) * (s - m)


def ito_drift(m, s, input_variance, label_noise, lr, batch_size, depth):
    """Itô correction of the balanced function-space drift: ``T L(L−1) m^{3−4/L} D(m)`` with ``T = η/(2B)``.

    It is ``T D πᵀ∇²m π`` on the balanced manifold (``π_l = a^{L−1}``, ``∂²m/∂a_l∂a_k = a^{L−2}`` for ``l ≠ k``) and
    vanishes for ``L = 1``."""
    m = np.asarray(m, np.float64)
    T = sgd_temperature(lr, batch_size)
    if depth == 1:
        return np.zeros_like(m)
    return T * depth * (depth - 1) * m ** (3.0 - 4.0 / depth) * mode_noise_var(m, s, input_variance, label_noise)


def function_drift(m, s, input_variance, label_noise, lr, batch_size, depth):
    """Balanced function-space drift of §5.3: ``L λ m^{2−2/L}(s − m) + T L(L−1) m^{3−4/L} D(m)``."""
    return (gf_drift(m, s, input_variance, depth)
            + ito_drift(m, s, input_variance, label_noise, lr, batch_size, depth))


def ito_drift_layers(a, s, input_variance, label_noise, lr, batch_size):
    """Itô correction for aligned, possibly unbalanced layers: ``T D(m) πᵀ ∇²_a m π``.

    ``∇²_a m`` has entries ``Π_{j≠l,k} a_j`` off the diagonal and 0 on it, so
    ``πᵀ∇²m π = Σ_{l≠k} π_l π_k Π_{j≠l,k} a_j`` (computed as products, valid at zeros)."""
    a = np.asarray(a, np.float64)
    depth = np.shape(a)[0]
    m, pi = _products(a)
    quad = np.zeros_like(m)
    for l in range(depth):
        for k in range(depth):
            if l == k:
                continue
            rest = np.ones_like(m)
            for j in range(depth):
                if j not in (l, k):
                    rest = rest * a[j]
            quad = quad + pi[l] * pi[k] * rest
    return sgd_temperature(lr, batch_size) * mode_noise_var(m, s, input_variance, label_noise) * quad


def function_drift_layers(a, s, input_variance, label_noise, lr, batch_size):
    """Function-space drift for aligned, possibly unbalanced layers (§5.3): ``λ K (s − m) + T D πᵀ∇²m π``,
    ``K = Σ_l π_l²``."""
    m, pi = _products(a)
    K = np.sum(pi**2, axis=0)
    return input_variance * K * (s - m) + ito_drift_layers(a, s, input_variance, label_noise, lr, batch_size)


def function_diffusion(m, s, input_variance, label_noise, lr, batch_size, depth):
    """Balanced function-space diffusion (variance per unit time of ``m``): ``(η/B) L² m^{4−4/L} D(m)``."""
    m = np.asarray(m, np.float64)
    return lr / batch_size * depth**2 * m ** (4.0 - 4.0 / depth) * mode_noise_var(m, s, input_variance, label_noise)


def function_diffusion_layers(a, s, input_variance, label_noise, lr, batch_size):
    """Function-space diffusion for aligned, possibly unbalanced layers: ``(η/B) K² D(m)``, ``K = Σ_l π_l²``.

    ``K² D`` is the noise power ``Var⟨A_α, G⟩`` of the ``noise_power`` observable on the aligned manifold."""
    m, pi = _products(a)
    K = np.sum(pi**2, axis=0)
    return lr / batch_size * K**2 * mode_noise_var(m, s, input_variance, label_noise)


# ---------------------------------------------------------------------------------------------------------
# Diffusion along a mode and its peak (§7)

_KINDS = {"parameter": "parameter", "par": "parameter", "function": "function", "fun": "function"}


def _kind(kind):
    if kind not in _KINDS:
        raise ConfigError("kind", kind, "'parameter' (p = 2 − 2/L) or 'function' (p = 4 − 4/L)")
    return _KINDS[kind]


def peak_exponent(depth, kind="function"):
    """``p`` of ``𝒟_p ∝ m^p D(m)``: ``2 − 2/L`` (per-layer, ``kind="parameter"``) or ``4 − 4/L`` (``"function"``)."""
    return (2.0 - 2.0 / depth) if _kind(kind) == "parameter" else (4.0 - 4.0 / depth)


def mode_diffusion(m, s, input_variance, label_noise, lr, batch_size, depth, kind="function"):
    """``𝒟_p(m) = c_p (η/B) m^p D(m)`` (§7.1): ``kind="parameter"``: ``p = 2 − 2/L``, ``c_p = 1`` (one layer of the
    balanced §5.2 SDE); ``kind="function"``: ``p = 4 − 4/L``, ``c_p = L²`` (the §5.3 SDE of ``m``). Exactly ``∝ η/B``."""
    m = np.asarray(m, np.float64)
    p = peak_exponent(depth, kind)
    c = 1.0 if _kind(kind) == "parameter" else float(depth) ** 2
    return c * lr / batch_size * m**p * mode_noise_var(m, s, input_variance, label_noise)


def peak_discriminant(s, input_variance, label_noise, p):
    """Discriminant ``8λ³[2λs² − p(p + 2)σ_ε²]`` of ``d/dm[m^p D(m)] = 0`` (§7.3); ``≥ 0`` iff an interior peak exists."""
    return 8.0 * input_variance**3 * (2.0 * input_variance * s**2 - p * (p + 2.0) * label_noise**2)


def peak_label_noise_max(s, input_variance, p):
    """Largest label-noise sd with an interior pre-learning peak: ``σ_ε,max = sqrt(2λs²/(p(p + 2)))`` (§7.3)."""
    return np.sqrt(2.0 * input_variance * s**2 / (p * (p + 2.0)))


def peak_roots(s, input_variance, label_noise, p):
    """``(m_−, m_+)``, the critical points of ``m^p D(m)`` on ``(0, s]`` (§7.3): the local maximum ``m_−`` and the
    local minimum ``m_+``; ``(nan, nan)`` when the discriminant is negative. ``σ_ε = 0`` gives ``(ps/(p+2), s)``."""
    disc = np.asarray(s**2 - p * (p + 2.0) * label_noise**2 / (2.0 * input_variance), np.float64)
    root = np.sqrt(np.where(disc >= 0, disc, np.nan))
    lo, hi = (s * (p + 1.0) - root) / (p + 2.0), (s * (p + 1.0) + root) / (p + 2.0)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def peak_strength(s, depth, kind="function", input_variance=1.0, label_noise=0.0):
    """Mode strength at the pre-learning peak of ``𝒟_p``: ``m* = p s/(p + 2)`` without label noise (§7.2) and
    ``m_−`` with label noise (§7.3); ``nan`` when the discriminant condition fails (no interior peak)."""
    p = peak_exponent(depth, kind)
    if np.all(np.asarray(label_noise) == 0):
        return p * np.asarray(s, np.float64) / (p + 2.0)
    return peak_roots(s, input_variance, label_noise, p)[0]


def peak_is_global(s, depth, kind="function", input_variance=1.0, label_noise=0.0):
    """Whether the pre-learning bump is the largest value of ``𝒟_p`` on ``(0, s]``: ``m_−^p D(m_−) ≥ s^p λσ_ε²``."""
    p = peak_exponent(depth, kind)
    mm = peak_strength(s, depth, kind, input_variance, label_noise)
    if np.isnan(mm):
        return False
    return bool(mm**p * mode_noise_var(mm, s, input_variance, label_noise) >= s**p * input_variance * label_noise**2)


def peak_time(m0, s, input_variance=1.0, depth=2, kind="function", label_noise=0.0):
    """Gradient-flow time ``t*`` at which a balanced mode started at ``m0`` reaches the peak strength (§7.2)."""
    mm = peak_strength(s, depth, kind, input_variance, label_noise)
    if np.isnan(mm):
        return np.nan
    return mode_time(mm, m0, s, input_variance, depth)


def learning_time(m0, s, input_variance=1.0, depth=2, eps=0.01):
    """Gradient-flow time ``t_ε`` at which the mode reaches ``(1 − ε) s`` (learned), from ``m0``."""
    return mode_time((1.0 - eps) * s, m0, s, input_variance, depth)


def peak_lag(s, input_variance=1.0, depth=2, kind="function", eps=0.01, label_noise=0.0):
    """``t_ε − t*`` under gradient flow; independent of ``m0`` (for ``L = 2`` it is
    ``ln(2(1 − ε)/(pε))/(2λs)`` when ``σ_ε = 0``)."""
    mm = peak_strength(s, depth, kind, input_variance, label_noise)
    if np.isnan(mm):
        return np.nan
    return mode_time((1.0 - eps) * s, mm, s, input_variance, depth)


# ---------------------------------------------------------------------------------------------------------
# Leaving the saddle (§8) and per-step noise


def escape_rates(s, input_variance, label_noise, lr, batch_size):
    """``L = 2`` log-growth rates near the saddle (§8) for ``m = a²`` under the SDE: ``median`` ``2λs − (η/B)D(0)``,
    ``mean`` ``2λs + (η/B)D(0)`` (of ``ln E m``) and ``var`` ``4(η/B)D(0)`` (of ``Var ln m``)."""
    d0 = lr / batch_size * mode_noise_var(0.0, s, input_variance, label_noise)
    return {"median": 2 * input_variance * s - d0, "mean": 2 * input_variance * s + d0, "var": 4 * d0}


def collapse_temperature(s, input_variance=1.0, label_noise=0.0):
    """``T_c = s/(2λs² + σ_ε²)``: for ``L = 2`` the mode sinks to the saddle when ``T = η/(2B) > T_c`` (§8, §9.1)."""
    return s / (2.0 * input_variance * s**2 + label_noise**2)


def sgd_step_variance(a, s, input_variance, label_noise, lr, batch_size, depth):
    """Variance of one balanced per-mode SGD step ``Δa`` (checks.md C4): ``η² a^{2L−2} D(a^L) / B``."""
    a = np.asarray(a, np.float64)
    return lr**2 * a ** (2 * depth - 2) * mode_noise_var(a**depth, s, input_variance, label_noise) / batch_size


# ---------------------------------------------------------------------------------------------------------
# The balanced mode as an object, and the pieces of its zero-flux density (§9.1)


def resolve_temperature(temperature=None, lr=None, batch_size=1):
    """``T`` from ``temperature`` or from ``lr`` and ``batch_size`` (``T = η/(2B)``); exactly one must be given."""
    if temperature is not None:
        if lr is not None:
            raise ConfigError("lr", lr, "None when temperature is given: give temperature, or lr with batch_size")
        return _POSITIVE.check("temperature", temperature)
    if lr is None:
        raise ConfigError("temperature", None, "a number > 0 (T = η/(2B)), or give lr and batch_size")
    _POSITIVE.check("lr", lr)
    _POSITIVE.check("batch_size", batch_size)
    return sgd_temperature(float(lr), float(batch_size))


@dataclass(frozen=True)
class ModeSDE:
    """One balanced mode: ``depth`` L, ``s``, ``input_variance`` λ, ``label_noise`` σ_ε, ``temperature``
    ``T = η/(2B)``, and the noise model ``D`` (``"exact"``: ``2λ²(m−s)² + λσ_ε²``; ``"label"``: ``λσ_ε²``)."""

    depth: int
    s: float
    input_variance: float
    label_noise: float
    temperature: float
    noise: str = "exact"

    def __post_init__(self):
        if self.depth < 1 or int(self.depth) != self.depth:
            raise ConfigError("depth", self.depth, "an integer >= 1")
        Options("exact", "label").check("noise", self.noise)
        for name in ("input_variance", "temperature"):
            _POSITIVE.check(name, getattr(self, name))
        for name in ("label_noise", "s"):
            _NON_NEGATIVE.check(name, getattr(self, name))

    @property
    def q(self):
        return 2.0 - 2.0 / self.depth

    @property
    def label_temperature(self):
        return self.label_noise**2 * self.temperature

    def log_D(self, m):
        """``ln D(m)`` without overflow."""
        lam, se = self.input_variance, self.label_noise
        if self.noise == "label":
            return np.full(np.shape(m), math.log(lam * se**2) if se > 0 else -np.inf)
        x = np.asarray(m, np.float64) - self.s
        with np.errstate(divide="ignore"):
            return math.log(lam) + np.log(2 * lam * x * x + se**2)

    def dlog_D(self, m):
        """``D'(m)/D(m)``."""
        if self.noise == "label":
            return np.zeros(np.shape(m))
        lam, se = self.input_variance, self.label_noise
        x = np.asarray(m, np.float64) - self.s
        return 4 * lam * x / (2 * lam * x * x + se**2)

    def s_minus_m_over_D(self, m):
        """``(s − m)/D(m)``, stable for large ``|m|``."""
        lam, se = self.input_variance, self.label_noise
        x = np.asarray(m, np.float64) - self.s
        if self.noise == "label":
            return -x / (lam * se**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            big = np.abs(x) > 1.0
            xs = np.where(big, x, 1.0)
            out_big = -1.0 / (lam * (2 * lam * xs + se**2 / xs))
            out_small = -x / (lam * (2 * lam * x * x + se**2))
        return np.where(big, out_big, out_small)


class ModeCoordinate:
    """The coordinate ``y`` in which a mode's density is smooth: ``m = e^y`` for ``L ≥ 2``; ``m = s + c·sinh(y)``
    for ``L = 1`` (support ℝ)."""

    def __init__(self, sde: ModeSDE, c=1.0):
        self.log = sde.depth >= 2
        self.s, self.c = sde.s, c

    def m(self, y):
        return np.exp(y) if self.log else self.s + self.c * np.sinh(y)

    def y(self, m):
        m = np.asarray(m, np.float64)
        if self.log:
            with np.errstate(divide="ignore"):
                return np.log(m)
        return np.arcsinh((m - self.s) / self.c)

    def log_jac(self, y):
        """``ln dm/dy``."""
        if self.log:
            return np.asarray(y, np.float64)
        ay = np.abs(y)
        return math.log(self.c) + ay + np.log1p(np.exp(-2 * ay)) - math.log(2.0)


def potential_slope(sde: ModeSDE, coord: ModeCoordinate, y):
    """``dΦ/dy = λ/(LT) · (s − m)/(m^q D(m)) · dm/dy``, the slope of the exponent ``Φ`` of the zero-flux
    density ``p(m) ∝ m^{3/L − 3} D(m)^{−1} e^{Φ(m)}`` (§9.1)."""
    L, lam, T = sde.depth, sde.input_variance, sde.temperature
    m = coord.m(y)
    r = sde.s_minus_m_over_D(m)
    if coord.log:  # (s − m)/D · m^{1−q} = … · m^{2/L − 1}
        with np.errstate(over="ignore", invalid="ignore"):
            return lam / (L * T) * r * np.exp((2.0 / L - 1.0) * y)
    return lam / T * r * np.exp(coord.log_jac(y))
