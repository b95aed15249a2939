# %% [markdown]
# # 4. Ziyin's diagonal network and its stationary law
#
# [Z] (Ziyin, Li, Ueda) study the simplest network with a rescaling symmetry: d paths of L scalar factors,
# output v = Σ_i Π_l w_{i,l}, learning y = s x + ε. SGD noise drives the factors of a path to
# balance, and the output then has an explicit **stationary law** at temperature T = η/(2B): for depth
# L = 2 (one hidden "layer", [Z]'s D = 1) a power law at the origin that collapses to δ(0) above the
# critical temperature T_c, and heavier-tailed laws at larger depth. `dlnlab.theory.DiagonalStationaryLaw`
# computes the normalised law (closed forms and quadrature); the diagonal simulator (config section
# `[diagonal]`) samples it.
#
# Units: [Z] write the loss without the ½ and depth D = L - 1; dlnlab's T = η/(2B) is the same number as
# their η_Z/S (`dlnlab.conventions.from_ziyin`, [Concepts](../../concepts/)).

# %%
import matplotlib.pyplot as plt
import numpy as np

import dlnlab
from dlnlab import theory
from dlnlab.analysis import stats

# %% [markdown]
# ## The law
#
# The reference data (λ = s = σ_ε = 1) have T_c = 1/3 at depth 2. Below it the law of
# v > 0 has a bulk near the minimiser and a power-law edge at 0 (at T = 0.2 it rises off this scale); the mean and
# the mode move towards 0 as T grows.

# %%
model = dlnlab.DiagonalModel(depth=2)
print("T_c =", model.T_crit())
v = np.linspace(1e-3, 2.5, 500)
fig, ax = plt.subplots(figsize=(6, 3.8))
for T in (0.02, 0.05, 0.1, 0.2):
    law = theory.DiagonalStationaryLaw(2, T)
    ax.plot(v, law.pdf(v), label=f"T = {T:g}: mean {law.mean:.3f}")
ax.set(xlabel="v", ylabel="density", title="stationary law of v, depth L = 2", ylim=(0, 3.5))
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Simulation against the law
#
# Two runs of 1000 replicas from v_0 = 1: the SDE in ln|v| (`kind = "sde_log"`, a fine time step
# Δt = 2·10⁻⁴) at T = 0.05, and online SGD with η = 0.04, B = 1, i.e. T = 0.02. Records
# after a burn-in of t = 10 are the stationary samples (`ds.dln.stationary`).

# %%
times = np.concatenate([np.linspace(0.0, 10.0, 11), 10.0 + np.arange(1, 11)]).tolist()
runs = {
    "SDE, T = 0.05": (0.05, dlnlab.Config.of("diagonal", depth=2, kind="sde_log", scheme="euler", lr=0.1,
                                             batch_size=1, dt=2e-4, v0=[1.0], times=times, replicas=1000)),
    "SGD, η = 0.04 (T = 0.02)": (0.02, dlnlab.Config.of("diagonal", depth=2, kind="sgd", lr=0.04, batch_size=1,
                                                       v0=[1.0], times=times, replicas=1000, seed=1)),
}
samples = {name: (T, dlnlab.simulate(cfg).dln.stationary(t_burn=10.0)) for name, (T, cfg) in runs.items()}
samples["SDE, T = 0.05"][1]

# %% [markdown]
# The mean over replicas with a batch-means confidence interval (`stats.group_estimate`: 20 groups of replicas,
# Student t with 19 dof), and the Kolmogorov–Smirnov distance of the last record (one independent sample per
# replica) to the law, with its exact p-value (`stats.ks_1samp`).

# %%
for name, (T, x) in samples.items():
    law = theory.DiagonalStationaryLaw(2, T)
    mean = stats.group_estimate(x.values, np.mean, groups=20)
    lo, hi = mean.bounds(0.005)
    ks = stats.ks_1samp(x.isel(t=-1).values, law.cdf)
    print(f"{name}: mean {mean.value:.4f} (99% CI {lo:.4f}–{hi:.4f}), law {law.mean:.4f}; "
          f"KS distance {ks.distance.value:.3f}, p = {ks.pvalue:.3f}")

# %% [markdown]
# Both agree with the law at this sample size. SGD at η = 0.04 has a discretisation bias of order h = 2η
# (`checks.md` Z9), below what 1000 replicas resolve; the `diagonal_stationary` experiment resolves it with 10 000.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, (name, (T, x)) in zip(axes, samples.items()):
    law = theory.DiagonalStationaryLaw(2, T)
    ax.hist(x.values.ravel(), bins=60, density=True, alpha=0.5, label="simulation")
    grid = np.linspace(max(1e-3, float(x.min())), float(x.max()), 400)
    ax.plot(grid, law.pdf(grid), "k", label="DiagonalStationaryLaw")
    ax.set(xlabel="v", ylabel="density", title=name)
    ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Above T_c: collapse
#
# At T = 0.5 > T_c the law is δ(0): every walker drifts to the origin, ln v at the rate
# 2(Tα₃ - β₂) = -1 per unit time for these data.

# %%
collapse = dlnlab.simulate(dlnlab.Config.of("diagonal", depth=2, kind="sde_log", lr=1.0, batch_size=1, dt=1e-3,
                                            v0=[1.0], times=np.linspace(0.0, 40.0, 41).tolist(), replicas=200))
log_v = collapse.log_abs_v.isel(path=0)
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.plot(collapse.t, log_v.median("replica"), label="median ln|v|")
ax.plot(collapse.t, -collapse.t + float(log_v.median("replica").isel(t=20)) + 20.0, "k:", label="slope −1")
ax.set(xlabel="t", ylabel="ln |v|", title="T = 0.5 > T_c: the output collapses")
ax.legend()
fig.tight_layout()
