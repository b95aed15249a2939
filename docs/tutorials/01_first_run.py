# %% [markdown]
# # 1. A first run: teacher, network, SGD against gradient flow, the saddle staircase
#
# A deep linear network W = W₃ W₂ W₁ learns a rank-3 teacher M = Σ_α s_α u_α v_αᵀ
# from online samples y = Mx. From a small initialisation it does not learn all modes at once: the loss sits on a
# plateau (a saddle) until the largest mode escapes, then on the next one — the *saddle-to-saddle* staircase.
# This tutorial runs an ensemble of SGD replicas and a few gradient-flow ones from the same config and looks at
# both. (Conventions: depth = number of weight matrices, time t = η · step; see
# [Concepts](../../concepts/).)

# %%
import matplotlib.pyplot as plt

import dlnlab

# %% [markdown]
# ## The config
#
# A run is described by a config: the teacher, the network, the initialisation, the dynamics, what to record and
# how many replicas. It is usually a TOML file (`dlnlab.load_config("run.toml")`); here it is the same nested
# mapping, validated by `Config.from_dict` — a wrong key or value raises a `ConfigError` naming the field and
# what is allowed (every key: [config reference](../../reference/config/)).

# %%
base = {
    "teacher": {"d_in": 8, "d_out": 8, "singular_values": [3.0, 1.5, 0.75]},
    "network": {"depth": 3, "width": 16},
    "init": {"kind": "gaussian", "scale": 1e-2},  # entries N(0, 0.01²): small, saddle-to-saddle regime
    "dynamics": {"kind": "sgd", "lr": 0.02, "batch_size": 4, "t_max": 60.0},
    "record": {"n_times": 150},  # log-spaced record times
    "ensemble": {"replicas": 16, "seed": 0},
}
sgd_config = dlnlab.Config.from_dict(base)

try:
    dlnlab.Config.from_dict({**base, "network": {"depth": 0, "width": 16}})
except dlnlab.ConfigError as err:
    print(err)

# %% [markdown]
# ## Simulate
#
# `dlnlab.simulate` compiles the whole ensemble into one JAX program and returns an `xarray.Dataset` with labelled
# dims (`replica`, `t`, `mode`, …), replica coordinates for every hyper-parameter, and the resolved config and
# versions in its attributes.

# %%
sgd = dlnlab.simulate(sgd_config)
sgd

# %% [markdown]
# The same network under gradient flow: only the dynamics section changes (an adaptive Dormand–Prince solver; a
# few replicas suffice, they differ only by their random initialisation).

# %%
flow_dict = sgd_config.to_dict()
flow_dict["dynamics"] = {"kind": "flow", "t_max": 60.0}
flow_dict["ensemble"]["replicas"] = 4
flow = dlnlab.simulate(dlnlab.Config.from_dict(flow_dict))

# %% [markdown]
# ## Mode strengths: SGD against gradient flow
#
# The mode strengths m_α = u_αᵀ W v_α rise one after the other to their targets s_α
# (dashed). `ds.dln.plot_modes` draws the median over replicas and a 10–90 % band.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
sgd.dln.plot_modes(axes[0])
axes[0].set_title("online SGD (η = 0.02, B = 4)")
flow.dln.plot_modes(axes[1])
axes[1].set_title("gradient flow")
fig.tight_layout()

# %% [markdown]
# ## The saddle staircase
#
# `ds.dln.plot_staircase` draws the loss with the saddle levels ½ Σ_{i>k} λ_i s_i² (dotted): each
# plateau sits on one of them.

# %%
ax = sgd.dln.plot_staircase(xscale="log")
ax.set_title("SGD: loss through the saddles")
plt.show()

# %% [markdown]
# `ds.dln.plateaus()` segments every replica into plateaus and jumps: one row per replica and plateau, with its
# time span, its loss against the theory level and the mode learned at the jump.

# %%
table = sgd.dln.plateaus()
table[["replica", "plateau", "t_start", "t_end", "loss", "loss_theory", "rank", "learned_mode"]].head(8)

# %% [markdown]
# Median escape time of each plateau, SGD against gradient flow:

# %%
for name, ds in (("SGD", sgd), ("flow", flow)):
    print(name, ds.dln.plateaus().groupby("plateau")["t_end"].median().round(2).to_dict())
