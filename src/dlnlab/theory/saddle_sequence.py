"""Saddle-to-saddle theory of deep linear networks (``saddle_to_saddle.md`` §§3–7), in NumPy/SciPy.

* **Saddle sequence** (§6.2): from small initialisation, gradient flow visits saddles of increasing rank. For
  inputs aligned with the teacher (``Σx = Σ_α λ_α v_α v_αᵀ``) the modes are learned in decreasing order of
  ``λ_α s_α`` (:func:`learning_order`); after ``k`` escapes the end-to-end map is ``Σ_{learned} s_α u_α v_αᵀ``
  (:func:`saddle_map`) and the loss is ``½ Σ_{not learned} λ_α s_α² + ½ d_out σ_ε²`` (:func:`saddle_loss`).
  This equals the best rank-``k`` loss (:func:`best_rank_k`, reduced-rank regression) only when the order of
  ``λ s`` agrees with that of ``λ s²`` — always for whitened inputs, not in general.
* **Escape and plateau times** (§§3–4, 6.3): exact half-times of an aligned balanced mode
  (:func:`escape_time`), the small-``m₀`` asymptotics with the constant ``c_L`` (:func:`escape_time_asymptotic`),
  the scaling law in the initialisation scale (:func:`escape_time_law`: ``ln(1/σ)/(λs)`` for ``L = 2``,
  ``∝ σ^{−(L−2)}`` for ``L ≥ 3``), the slope/exponent to fit (:func:`escape_law_slope`), per-mode plateau times
  and their ratios (:func:`plateau_times`, :func:`time_ratios`).
* **γ phase transition** (§5): the expected distance to the saddle at 0, its width exponent ``(1 − γ)/2``, and the
  lower bound on the distance to the global minima (:func:`saddle_distance_expected`,
  :func:`saddle_distance_exponent`, :func:`minima_distance_lower_bound`).
* **Greedy low-rank learning** (§7; Li, Luo & Lyu 2021): the ``σ → 0`` limit as an algorithm, in closed form for
  the population loss with aligned inputs (:func:`greedy_sequence`) and numerically for any cost given its
  end-to-end gradient (:func:`greedy_low_rank`, e.g. matrix completion).

Everything attributed to [J] beyond its abstract is derived (see the theory notes' anchoring).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np
from scipy import integrate

from ..config import Interval
from ..errors import ConfigError
from .gradient_flow import mode_time

_POSITIVE = Interval(Real, 0, None, closed="neither")

# ---------------------------------------------------------------------------------------------------------
# The saddle sequence (§6.2)


def _modes(s, input_variance):
    s = np.atleast_1d(np.asarray(s, np.float64))
    lam = np.broadcast_to(np.asarray(input_variance, np.float64), s.shape).astype(np.float64)
    if np.any(s < 0):
        raise ConfigError("s", s, "singular values >= 0")
    if np.any(lam <= 0):
        raise ConfigError("input_variance", input_variance, "input variances > 0 (a number or one per mode)")
    return s, lam


def learning_order(s, input_variance=1.0) -> np.ndarray:
    """0-based indices of the modes with ``s_α > 0`` in the order gradient flow learns them from small
    initialisation: decreasing ``λ_α s_α`` (the singular values of ``Σyx = M Σx``); ties keep index order."""
    s, lam = _modes(s, input_variance)
    idx = np.flatnonzero(s > 0)
    return idx[np.argsort(-(lam * s)[idx], kind="stable")]


def saddle_loss(k: int, s, input_variance=1.0, label_noise: float = 0.0, d_out: int | None = None) -> float:
    """Population loss at saddle ``k`` (after ``k`` escapes): ``½ Σ_{α not learned} λ_α s_α² + ½ d_out σ_ε²``.

    ``k = 0`` is the origin; ``k = rank(M)`` is the global minimum. ``d_out`` (default ``len(s)``) only
    enters through the label-noise floor."""
    s, lam = _modes(s, input_variance)
    order = learning_order(s, lam)
    if not 0 <= k <= len(order):
        raise ConfigError("k", k, f"a saddle index in [0, {len(order)}] (the rank: the number of modes with s > 0)")
    unlearned = np.setdiff1d(np.arange(len(s)), order[:k])
    d_out = len(s) if d_out is None else d_out
    return float(0.5 * np.sum(lam[unlearned] * s[unlearned] ** 2) + 0.5 * d_out * label_noise**2)


def saddle_losses(s, input_variance=1.0, label_noise: float = 0.0, d_out: int | None = None) -> np.ndarray:
    """``[saddle_loss(k) for k = 0 … rank(M)]``: the plateau levels of the loss staircase."""
    K = len(learning_order(s, input_variance))
    return np.array([saddle_loss(k, s, input_variance, label_noise, d_out) for k in range(K + 1)])


def saddle_map(k: int, s, U, V, input_variance=1.0) -> np.ndarray:
    """End-to-end map at saddle ``k``: ``Σ_{first k modes in learning order} s_α u_α v_αᵀ`` (``U``, ``V`` hold
    the singular vectors as columns)."""
    s, lam = _modes(s, input_variance)
    order = learning_order(s, lam)[:k]
    U, V = np.asarray(U, np.float64), np.asarray(V, np.float64)
    return (U[:, order] * s[order]) @ V[:, order].T


def best_rank_k(M, k: int, input_cov=None, label_noise: float = 0.0):
    """Best rank-``k`` approximation of ``M`` for the population loss ``½ tr((A − M) Σx (A − M)ᵀ)``.

    Whitened (``input_cov=None``): the truncated SVD (Eckart–Young). General ``Σx``: reduced-rank regression
    ``A_k = [M Σx^{1/2}]_k Σx^{−1/2}``. Returns ``(A_k, loss_k)`` with
    ``loss_k = ½ (tr(M Σx Mᵀ) − Σ_{i≤k} σ_i(M Σx^{1/2})²) + ½ d_out σ_ε²``. Do not identify this with the saddle
    gradient flow visits unless the orders of ``λ s`` and ``λ s²`` agree (§6.2).
    """
    M = np.asarray(M, np.float64)
    if input_cov is None:
        S_half = S_inv_half = np.eye(M.shape[1])
    else:
        evals, evecs = np.linalg.eigh(np.asarray(input_cov, np.float64))
        if np.any(evals <= 0):
            raise ConfigError("input_cov", f"a matrix with smallest eigenvalue {evals.min():.3g}",
                              "a positive definite covariance (None: whitened inputs)")
        S_half = (evecs * np.sqrt(evals)) @ evecs.T
        S_inv_half = (evecs / np.sqrt(evals)) @ evecs.T
    Mt = M @ S_half
    u, sv, vt = np.linalg.svd(Mt)
    k = int(k)
    A = (u[:, :k] * sv[:k]) @ vt[:k] @ S_inv_half
    loss = 0.5 * (np.sum(sv**2) - np.sum(sv[:k] ** 2)) + 0.5 * M.shape[0] * label_noise**2
    return A, float(loss)


@dataclass(frozen=True)
class GreedyStep:
    """One step of the greedy low-rank sequence: the map ``A_k`` reached, its rank and loss, and the direction
    ``(u, v)`` (top singular pair of ``−∇𝓛(A_{k−1})``) through which the new channel was opened.
    ``grad_norm`` is ``‖∇_A 𝓛(A_k)‖_op``: the residual gradient at the saddle (0 at a global minimum)."""

    k: int
    A: np.ndarray
    loss: float
    u: np.ndarray | None
    v: np.ndarray | None
    grad_norm: float


def greedy_sequence(M, input_cov=None, label_noise: float = 0.0) -> list[GreedyStep]:
    """Greedy low-rank sequence for the population loss with inputs aligned to the teacher, in closed form.

    Step ``k + 1`` takes the top singular pair of ``−∇𝓛(A_k) = (M − A_k) Σx``; when ``Σx`` shares ``M``'s right
    singular vectors this is the unlearned mode with the largest ``λ s``, and gradient flow in the widened
    factorisation adds exactly ``s u vᵀ``. So ``A_k`` are the saddles of §6.2 (truncated SVDs when whitened).
    Raises if ``Σx`` is not aligned with ``M`` (use :func:`greedy_low_rank` then)."""
    M = np.asarray(M, np.float64)
    S = np.eye(M.shape[1]) if input_cov is None else np.asarray(input_cov, np.float64)
    U, s, Vt = np.linalg.svd(M)
    V = Vt.T
    r = int(np.sum(s > 1e-12 * max(s[0], 1e-300)))
    lam = np.array([V[:, a] @ S @ V[:, a] for a in range(r)])
    if np.linalg.norm(S @ V[:, :r] - V[:, :r] * lam) > 1e-10 * max(1.0, np.linalg.norm(S)):
        raise ConfigError("input_cov", "a Σx not aligned with the right singular vectors of M",
                          "a Σx sharing M's right singular vectors (None: whitened); use greedy_low_rank for "
                          "general costs")
    order = learning_order(s[:r], lam)
    d_out = M.shape[0]
    A = np.zeros_like(M)

    def loss_of(A):
        E = A - M
        return float(0.5 * np.sum((E @ S) * E) + 0.5 * d_out * label_noise**2)

    steps = [GreedyStep(0, A.copy(), loss_of(A), None, None, float(np.linalg.norm(M @ S, 2)))]
    for k, a in enumerate(order, start=1):
        A = A + s[a] * np.outer(U[:, a], V[:, a])
        steps.append(GreedyStep(k, A.copy(), loss_of(A), U[:, a].copy(), V[:, a].copy(),
                                float(np.linalg.norm((M - A) @ S, 2))))
    return steps


def greedy_low_rank(grad, shape, *, depth: int = 2, lipschitz: float = 1.0, k_max: int | None = None,
                    eps: float = 1e-3, gtol: float = 1e-7, stop_tol: float = 1e-6, max_steps: int = 200_000,
                    loss=None) -> list[GreedyStep]:
    """Greedy low-rank learning for any smooth cost of the end-to-end map (§7), numerically.

    ``grad(A)`` returns ``∇_A 𝓛`` (``shape = (d_out, d_in)``); ``lipschitz`` bounds its Lipschitz constant (1 for
    ``½‖P_Ω(A − M)‖²``, ``λ_max(Σx)`` for the population loss). Algorithm:

    1. ``A_0 = 0`` (a width-0 factorisation), ``k = 0``;
    2. ``(u, v)`` = top singular pair of ``−∇𝓛(A_k)``; stop when its singular value is below ``stop_tol``;
    3. open a new channel ``u vᵀ`` of scale ``eps`` through all ``depth`` layers of the width-``k`` factorisation
       (the optimal escape direction of §6.1), run gradient descent on the width-``k+1`` factorisation to a
       critical point (parameter gradient norm ``< gtol``), giving ``A_{k+1}``; repeat.

    GD uses the step ``0.3 / (lipschitz · Σ_l ‖W_{>l}‖²‖W_{<l}‖²)``, recomputed every iteration. The result is
    the ``σ → 0`` limit of gradient flow only up to the ``eps``-dependent escape; it is a numerical oracle.
    """
    d_out, d_in = shape
    L = int(depth)
    if L < 2:
        raise ConfigError("depth", depth, "an integer >= 2 (greedy low-rank learning needs a factorisation)")
    k_max = min(d_out, d_in) if k_max is None else int(k_max)
    A = np.zeros(shape)
    layers = [np.zeros((0, d_in)), *(np.zeros((0, 0)) for _ in range(L - 2)), np.zeros((d_out, 0))]
    G = np.asarray(grad(A), np.float64)
    steps = [GreedyStep(0, A.copy(), float(loss(A)) if loss else np.nan, None, None, float(np.linalg.norm(G, 2)))]
    for k in range(1, k_max + 1):
        u_, sv, vt = np.linalg.svd(-G)
        if sv[0] < stop_tol:
            break
        u, v = u_[:, 0], vt[0]
        a = eps ** (1.0 / L)  # balanced new channel: W_1 += a e vᵀ, W_l += a e eᵀ, W_L += a u eᵀ
        new = []
        for l, W in enumerate(layers):
            r, c = W.shape
            if l == 0:
                Wn = np.vstack([W, a * v[None, :]])
            elif l == L - 1:
                Wn = np.hstack([W, a * u[:, None]])
            else:
                Wn = np.zeros((r + 1, c + 1))
                Wn[:r, :c] = W
                Wn[r, c] = a
            new.append(Wn)
        layers = new
        layers, A, G = _gd_to_critical(layers, grad, lipschitz, gtol, max_steps)
        steps.append(GreedyStep(k, A.copy(), float(loss(A)) if loss else np.nan, u, v, float(np.linalg.norm(G, 2))))
    return steps


def _product(layers):
    W = layers[0]
    for Wl in layers[1:]:
        W = Wl @ W
    return W


def _sq_op(X):
    """``‖X‖²_op`` from the smaller Gram matrix."""
    g = X @ X.T if X.shape[0] <= X.shape[1] else X.T @ X
    return float(np.linalg.eigvalsh(g)[-1]) if g.size else 0.0


def _gd_to_critical(layers, grad, lipschitz, gtol, max_steps):
    L = len(layers)
    for _ in range(max_steps):
        pre = [np.eye(layers[0].shape[1])]
        for W in layers[:-1]:
            pre.append(W @ pre[-1])
        suf = [np.eye(layers[-1].shape[0])]
        for W in reversed(layers[1:]):
            suf.append(suf[-1] @ W)
        suf = suf[::-1]
        A = suf[0] @ layers[0]
        G = np.asarray(grad(A), np.float64)
        grads = [suf[l].T @ G @ pre[l].T for l in range(L)]
        if np.sqrt(sum(np.sum(g**2) for g in grads)) < gtol:  # a critical point of the factorised cost
            return layers, A, G
        lam = sum(_sq_op(suf[l]) * _sq_op(pre[l]) for l in range(L))
        eta = 0.3 / (lipschitz * max(lam, 1e-12))
        layers = [W - eta * g for W, g in zip(layers, grads)]
    A = _product(layers)
    return layers, A, np.asarray(grad(A), np.float64)


# ---------------------------------------------------------------------------------------------------------
# Escape and plateau times (§§3, 4, 6.3)


def c_L(depth: int) -> float:
    """The constant of the small-``m₀`` escape-time expansion (§3):
    ``c_L = −L 2^{1−2/L}/(L − 2) + ∫_0^{1/2} x^{2/L−1}/(1 − x) dx`` (``c_3 = −2.5508``, ``c_4 = −1.0657``)."""
    L = depth
    if L < 3:
        raise ConfigError("depth", depth, "an integer >= 3 (c_L is defined for L >= 3)")
    p = 2.0 / L - 1.0
    # ∫ x^p/(1−x) = ∫ x^p + ∫ x^{p+1}/(1−x): the first part in closed form, the second smooth
    head = 0.5 ** (p + 1) / (p + 1)
    tail, _ = integrate.quad(lambda x: x ** (p + 1) / (1 - x), 0.0, 0.5, epsabs=0, epsrel=1e-13)
    return -L * 2.0 ** (1 - 2.0 / L) / (L - 2) + head + tail


def escape_time(s, m0, depth: int, input_variance: float = 1.0, frac: float = 0.5) -> float:
    """Exact time for an aligned, balanced mode to grow from ``m0`` to ``frac · s`` (default the half-time
    ``t_{1/2}``) under gradient flow (§3)."""
    return float(mode_time(frac * s, m0, s, input_variance, depth))


def escape_time_asymptotic(s, m0, depth: int, input_variance: float = 1.0) -> float:
    """Small-``m₀`` half-time: ``L = 2``: ``ln((s − m₀)/m₀)/(2λs)`` (exact); ``L ≥ 3``:
    ``[L/(L−2) (m₀/s)^{2/L−1} + c_L] / (L λ s^{2−2/L})`` with relative error ``O(m₀/s)`` (checks.md G2)."""
    L = depth
    if L == 2:
        return float(np.log((s - m0) / m0) / (2 * input_variance * s))
    if L < 2:
        raise ConfigError("depth", depth, "an integer >= 2 (L = 1 has no plateau)")
    return float((L / (L - 2) * (m0 / s) ** (2.0 / L - 1) + c_L(L)) / (L * input_variance * s ** (2 - 2.0 / L)))


def escape_time_law(sigma, s, depth: int, input_variance: float = 1.0, width: int = 1, c: float = 1.0):
    """Leading-order escape time from a random initialisation of scale ``σ`` (§4), with effective per-layer
    scale ``a₀ = c σ √w`` (``c = O(1)`` has no closed form; it cancels in slopes and ratios):

    * ``L = 2``: ``t ≈ ln(1/a₀)/(λ s) + ln(s)/(2 λ s)`` (slope ``1/(λs)`` per unit ``ln(1/σ)``);
    * ``L ≥ 3``: ``t ≈ a₀^{2−L} / ((L − 2) λ s)`` (``∝ σ^{−(L−2)}``).
    """
    L = depth
    a0 = c * np.asarray(sigma, np.float64) * np.sqrt(width)
    if L == 2:
        return np.log(1.0 / a0) / (input_variance * s) + np.log(s) / (2 * input_variance * s)
    if L < 2:
        raise ConfigError("depth", depth, "an integer >= 2 (L = 1 has no plateau)")
    return a0 ** (2.0 - L) / ((L - 2) * input_variance * s)


def escape_law_slope(depth: int, s: float = 1.0, input_variance: float = 1.0) -> tuple[str, float]:
    """What to fit to escape times against the init scale ``σ``, and its theoretical value (§4, §8.3):
    ``("slope", 1/(λs))`` — ``t`` against ``ln(1/σ)`` — for ``L = 2``; ``("exponent", −(L − 2))`` — ``ln t``
    against ``ln σ`` — for ``L ≥ 3``."""
    L = depth
    if L == 2:
        return "slope", 1.0 / (input_variance * s)
    if L < 2:
        raise ConfigError("depth", depth, "an integer >= 2 (L = 1 has no plateau)")
    return "exponent", -(L - 2.0)


def plateau_times(s, m0, depth: int, input_variance=1.0) -> np.ndarray:
    """Exact half-times ``t_α`` of every mode with ``s_α > 0`` for an aligned, balanced init with ``m_α(0) = m0``
    (modes decouple, §6.3), in learning order. Plateau ``k`` lasts ``t_{k+1} − t_k``."""
    L = depth
    s, lam = _modes(s, input_variance)
    return np.array([escape_time(s[a], m0, L, lam[a]) for a in learning_order(s, lam)])


def time_ratios(s, depth: int, input_variance=1.0, m0: float | None = None) -> np.ndarray:
    """Ratios ``t_α / t_1`` in learning order: exact for an aligned balanced init with ``m0`` given, else the
    ``m0 → 0`` limit ``λ_1 s_1 / (λ_α s_α)`` (approached like ``1/ln(1/m0)`` for ``L = 2`` and ``m0^{1−2/L}`` for
    ``L ≥ 3``)."""
    L = depth
    s, lam = _modes(s, input_variance)
    if m0 is not None:
        t = plateau_times(s, m0, L, lam)
        return t / t[0]
    order = learning_order(s, lam)
    rate = lam[order] * s[order]
    return rate[0] / rate


# ---------------------------------------------------------------------------------------------------------
# The γ phase transition (§5)


def saddle_distance_expected(width, gamma, d_in: int, d_out: int):
    """Expected distance from a Gaussian init (``σ² = w^{−γ}``) to the saddle set ``{W_1 = 0, W_L = 0}`` (the
    origin for ``L = 2``): ``σ √(w (d_in + d_out)) = √(d_in + d_out) w^{(1−γ)/2}`` (§5.1)."""
    w = np.asarray(width, np.float64)
    return np.sqrt(d_in + d_out) * w ** ((1.0 - np.asarray(gamma, np.float64)) / 2.0)


def saddle_distance_exponent(gamma):
    """Width exponent of the saddle distance: ``d_sad ∝ w^{(1−γ)/2}`` (§5.1)."""
    return (1.0 - np.asarray(gamma, np.float64)) / 2.0


def minima_distance_lower_bound(r, s1: float, depth: int):
    """§5.2: every θ with ``‖W_θ‖_op ≥ s_1`` (in particular every global minimum of whitened realizable MSE)
    is at distance ``≥ √L (s_1^{1/L} − r)_+`` from an init whose layers have ``max_l ‖W_l‖_op = r``."""
    L = depth
    return np.sqrt(L) * np.maximum(s1 ** (1.0 / L) - np.asarray(r, np.float64), 0.0)


def minimal_norm_to_fit(s, depth: int) -> float:
    """``min {‖θ‖ : W_θ = M} = √(L Σ_i s_i^{2/L})`` (§7, balanced SVD factorisation): the distance from the origin
    to the set of global minima of realizable MSE."""
    L = depth
    s = np.asarray(s, np.float64)
    return float(np.sqrt(L * np.sum(s[s > 0] ** (2.0 / L))))


def minima_displacement_exponent(gamma, depth: int = 2):
    """§5.3 heuristic width exponent of the distance to the global minima for ``γ < 1`` (``σ² = w^{−γ}``): cancelling
    the random initial output costs ``~w^{−γ/2}``, fitting ``M`` costs ``~w^{−(1−γ)(L−1)/2}``, so the GD displacement
    scales as ``w^{−min(γ, (1−γ)(L−1))/2}`` (``L = 2``: ``−min(γ, 1−γ)/2``; −0.25 at γ = 0.5, checks.md G10)."""
    L = depth
    g = np.asarray(gamma, np.float64)
    return -np.minimum(g, (1.0 - g) * (L - 1)) / 2.0


def origin_hessian_spectrum(G0, width: int) -> np.ndarray:
    """§6.1, ``L = 2``: sorted eigenvalues of the Hessian of the loss at ``θ = 0`` for a ``d_0 → w → d_L`` network,
    ``G0 = −∇_W 𝓛(0) = M Σx`` (``d_L × d_0``): ``±σ_i(G0)``, each ``w`` times, plus ``w (d_0 + d_L − 2 rank G0)``
    zeros (checks.md G4). For ``L ≥ 3`` the Hessian at 0 is the zero matrix."""
    G0 = np.asarray(G0, np.float64)
    sig = np.linalg.svd(G0, compute_uv=False)
    sig = sig[sig > 1e-12 * max(sig.max(initial=0.0), 1e-300)]
    n_zero = width * (G0.shape[0] + G0.shape[1] - 2 * len(sig))
    return np.sort(np.concatenate([np.repeat(sig, width), -np.repeat(sig, width), np.zeros(n_zero)]))


def regularised_singular_values(s, rho: float, depth: int) -> np.ndarray:
    """§7 (derived): the singular values ``a_i`` of the minimiser of ``½‖A − M‖² + (ρL/2) Σ_i s_i(A)^{2/L}`` — the
    whitened population loss plus weight decay ``(ρ/2)‖θ‖²`` on a depth-``L`` network, which acts on ``A = W_θ`` as
    the Schatten-2/L quasi-norm ``min_{W_θ = A} ‖θ‖² = L Σ_i s_i(A)^{2/L}`` (balanced SVD factorisation). The
    minimiser shares ``M``'s singular vectors; per mode ``a`` minimises ``½(a − s)² + (ρL/2) a^{2/L}`` over ``a ≥ 0``:
    ``L = 2``: ``a = (s − ρ)_+`` (soft threshold); ``L ≥ 3``: the larger root of ``a + ρ a^{2/L−1} = s`` when it
    exists and beats ``a = 0``, else 0."""
    from scipy import optimize

    L = int(depth)
    s = np.atleast_1d(np.asarray(s, np.float64))
    if L < 2:
        raise ConfigError("depth", depth, "an integer >= 2")
    if L == 2:
        return np.maximum(s - float(rho), 0.0)
    rho = _POSITIVE.check("rho", rho)
    q = 2.0 / L - 1.0
    a_c = (rho * -q) ** (1.0 / (1.0 - q))  # minimum of g(a) = a + ρ a^q: g'(a) = 1 + ρ q a^(q−1) = 0
    out = np.zeros_like(s)
    for i, si in enumerate(s):
        g = lambda a, si=si: a + rho * a**q - si
        if si <= 0 or g(a_c) >= 0:
            continue
        a = optimize.brentq(g, a_c, si, xtol=1e-15, rtol=1e-15)
        if 0.5 * (a - si) ** 2 + 0.5 * rho * L * a ** (2.0 / L) < 0.5 * si**2:
            out[i] = a
    return out
