# %% [markdown]
# # 2. Ensembles and stacked hyper-parameters
#
# A hyper-parameter that keeps array shapes — the learning rate, the label noise, the initial scale or γ —
# may be given as a *list*: every combination of the lists is stacked on the replica axis of **one** compiled run,
# each with `ensemble.replicas` seeds. The dataset then carries one coordinate per stacked hyper-parameter along
# `replica`, and xarray's `groupby` (or a reshape into a grid) does the rest.
#
# Here: three learning rates × two label-noise levels × 10 seeds = 60 replicas in one run. With label noise
# σ_ε the loss cannot go below the floor ½ d_out σ_ε², and SGD
# fluctuates above it by an amount that grows with the temperature T = η/(2B).

# %%
import matplotlib.pyplot as plt
import numpy as np

import dlnlab
from dlnlab import conventions

# %%
config = dlnlab.Config.from_dict({
    "teacher": {"d_in": 8, "d_out": 8, "singular_values": [3.0, 1.5, 0.75], "label_noise": [0.0, 0.5]},
    "network": {"depth": 3, "width": 16},
    "init": {"kind": "gaussian", "scale": 1e-2},
    "dynamics": {"kind": "sgd", "lr": [0.01, 0.02, 0.04], "batch_size": 4, "t_max": 60.0},  # t_max: common time axis
    "record": {"n_times": 100},
    "ensemble": {"replicas": 10, "seed": 0},
})
print(config.stacked())
ds = dlnlab.simulate(config)
ds.coords["lr"]

# %% [markdown]
# ## groupby
#
# The final loss, median over the seeds of each learning rate (label-noise levels mixed):

# %%
final = ds.loss.isel(t=-1)
final.groupby("lr").median()

# %% [markdown]
# Grouping by two coordinates at once gives the full table:

# %%
final.groupby(["lr", "label_noise"]).median()

# %% [markdown]
# ## A grid of hyper-parameters
#
# `set_index` + `unstack` turns the replica axis into the grid `(lr, label_noise, member)` — `member` is the seed
# index within a combination (with `ensemble.common_random_numbers = true`, the default, the same member index
# draws the same random stream in every combination, which makes differences between combinations less noisy).

# %%
grid = ds.set_index(replica=["lr", "label_noise", "member"]).unstack("replica")
grid.loss.sizes

# %% [markdown]
# The loss curves, median over seeds, one panel per label-noise level:

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)
for ax, noise in zip(axes, grid.label_noise.values):
    for lr in grid.lr.values:
        curve = grid.loss.sel(lr=lr, label_noise=noise).median("member")
        ax.plot(grid.t, curve, label=f"η = {lr:g}")
    ax.set(xscale="log", yscale="log", xlabel="t", ylabel="loss", title=f"σ_ε = {noise:g}")
    ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Excess loss against temperature
#
# Late in the run (t ≥ 40, after the last plateau) the loss fluctuates around a stationary level. Averaging each
# replica over those times and subtracting the floor ½ d_out σ_ε² gives the excess loss, which grows about linearly
# with T — the SGD noise that label noise injects. The error bars are the spread (10–90 %) over the seeds.

# %%
late = ds.loss.where(ds.t >= 40.0, drop=True).mean("t")
noisy = late.where(late.label_noise > 0, drop=True)
floor = 0.5 * config.teacher.d_out * noisy.label_noise**2
excess = (noisy - floor).groupby("lr")
T = conventions.temperature(np.array(sorted(set(noisy.lr.values))), config.dynamics.batch_size)
med, lo, hi = (excess.quantile(q).values for q in (0.5, 0.1, 0.9))

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.errorbar(T, med, yerr=[med - lo, hi - med], fmt="o-", capsize=3)
ax.set(xlabel="T = η / (2B)", ylabel="late loss − ½ d_out σ_ε²", title="σ_ε = 0.5: excess loss")
fig.tight_layout()

# %% [markdown]
# ## The summaries a sweep would record
#
# `ds.dln.summary()` computes, for each stacked combination, the rows a sweep writes into `results.parquet`: final
# loss, learned rank, per-mode escape times and plateaus, stationary moments of m_α, jump times.

# %%
ds.dln.summary()[["dynamics.lr", "teacher.label_noise", "loss_final_median", "learned_rank_median",
                  "escape_time_1", "escape_time_2", "escape_time_3"]]
