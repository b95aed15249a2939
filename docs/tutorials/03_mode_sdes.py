# %% [markdown]
# # 3. Per-mode SDEs and the diffusion peak
#
# On the aligned, balanced manifold a deep linear network reduces to independent scalar modes
# m_α = a_α^L. Online SGD then moves each mode by its own exact recursion, and the SDE model of SGD
# (Itô, dm = drift·dt + √𝒟(m) dW) by a one-dimensional equation per mode. The per-mode
# simulator (config section `[modes]`) integrates both — thousands of replicas in seconds.
#
# The diffusion along a mode in function space, 𝒟(m) = (η/B)L² m^(4−4/L)D(m) with
# D(m) = 2λ²(m − s)² + λσ_ε², is small at the saddle (m ≈ 0) and, without
# label noise, at the minimum (m = s): it **peaks during learning**, at m* = ps/(p+2) with p = 4 − 4/L ([C],
# derived). This tutorial measures the peak on simulated trajectories and holds it against that formula.

# %%
import matplotlib.pyplot as plt
import numpy as np

import dlnlab
from dlnlab import theory
from dlnlab.analysis import stats

# %% [markdown]
# ## SGD and its SDE, mode by mode
#
# `Config.of("modes", ...)` takes the keys of the per-mode model by name. Two modes, s = (2, 1), depth
# L = 3, balanced start m_α(0) = 10⁻³, label noise σ_ε = 0.3, online SGD with
# η = 0.02, B = 1, and the SDE with the same η (its time step defaults to Δt = η).

# %%
S, L, LR, B, NOISE = [2.0, 1.0], 3, 0.02, 1, 0.3
common = {"singular_values": S, "depth": L, "m0": 1e-3, "lr": LR, "batch_size": B, "label_noise": NOISE,
          "t_max": 30.0, "n_times": 600, "spacing": "linear", "replicas": 400}
runs = {kind: dlnlab.simulate(dlnlab.Config.of("modes", kind=kind, **common)) for kind in ("sgd", "sde")}
runs["sde"]

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, (kind, ds) in zip(axes, runs.items()):
    ds.dln.plot_modes(ax)
    ax.set_title(f"per-mode {kind.upper()} (400 replicas)")
fig.tight_layout()

# %% [markdown]
# The learning time of each mode — the first record time at which m_α ≥ 0.9s_α — under SGD and
# under the SDE. `dlnlab.analysis.stats.first_hit_time` counts the replicas that never get there separately, and
# `bootstrap_quantile` gives the median with a bootstrap confidence interval (never-hit times count as censored).

# %%
for kind, ds in runs.items():
    hit = stats.first_hit_time(ds.t.values, ds.mode_strength.values, 0.9 * ds.s.values)
    for mode in range(ds.sizes["mode"]):
        median = stats.bootstrap_quantile(hit.time[:, mode], 0.5, censored=True)
        lo, hi = median.bounds(0.05)
        print(f"{kind}: mode {mode + 1} learned at t = {median.value:.2f} (90% CI {lo:.2f}–{hi:.2f}), "
              f"never: {int(hit.n_never[mode])}")

# %% [markdown]
# Once learned, each mode fluctuates around s_α because of the label noise; the SDE reproduces the size of
# SGD's fluctuations (standard deviation of m_α over replicas and the times t ≥ 20):

# %%
for kind, ds in runs.items():
    print(kind, np.round(ds.dln.stationary(t_burn=20.0).std(("replica", "t")).values, 4))

# %% [markdown]
# ## The diffusion peak
#
# `theory.mode_diffusion` evaluates 𝒟(m) on the recorded m_α(t) of every replica. With label
# noise 𝒟 no longer vanishes at m = s: as a function of m it has a local maximum m₋ before
# learning and a local minimum m₊ (`theory.peak_roots`; without label noise m₋ = ps/(p+2) and m₊ = s). The
# pre-learning peak of a replica is the maximum of 𝒟(m(t)) over the times before m first reaches
# m₊; its strength is held against m₋ (`theory.peak_strength`).

# %%
ds = runs["sde"]
m = ds.mode_strength
diffusion = m.copy(data=theory.mode_diffusion(m.values, ds.s.values, 1.0, NOISE, LR, B, L, kind="function"))
p = 4 - 4 / L
m_minus, m_plus = (np.array(r) for r in zip(*(theory.peak_roots(s, 1.0, NOISE, p) for s in S)))
before = (m >= m.copy(data=np.broadcast_to(m_plus, m.shape))).cumsum("t") == 0
at_peak = m.isel(t=diffusion.where(before).argmax("t"))
print("m at the pre-learning peak, median over replicas:", np.round(at_peak.median("replica").values, 3))
print("theory m_- (peak_strength):                     ", np.round(theory.peak_strength(np.array(S), L,
                                                                     label_noise=NOISE), 3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for mode in range(ds.sizes["mode"]):
    d = diffusion.isel(mode=mode)
    line, = axes[0].plot(ds.t, d.median("replica"), label=f"mode {mode + 1}")
    axes[0].fill_between(ds.t, d.quantile(0.1, "replica"), d.quantile(0.9, "replica"), color=line.get_color(),
                         alpha=0.2, lw=0)
    axes[1].hist(at_peak.isel(mode=mode), bins=30, color=line.get_color(), alpha=0.6, label=f"mode {mode + 1}")
    axes[1].axvline(m_minus[mode], color=line.get_color(), ls="--")
axes[0].set(xlabel="t", ylabel="D(m(t))", title="function-space diffusion along each mode (SDE)")
axes[0].legend()
axes[1].set(xlabel="m at the pre-learning peak", ylabel="replicas", title="peak strength (dashed: m_-)")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# `theory.peak_is_global` says whether the pre-learning bump is still the largest value of 𝒟 on
# (0, s]; above some label noise the learned phase is noisier than the bump (the `diffusion_peak` experiment
# measures where).

# %%
for noise in (0.0, 0.3, 0.6, 1.0):
    print(f"σ_ε = {noise}: bump is the global maximum for s = 2: {bool(theory.peak_is_global(2.0, L, label_noise=noise))}")
