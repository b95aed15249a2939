# %% [markdown]
# # 5. A sweep on a local Dask cluster, and a phase diagram
#
# `dlnlab.sweep(config, grid, executor=...)` expands a grid of config values into runs, executes them on a
# process pool, a Dask cluster or SLURM, and writes one dataset per run plus one table, `results.parquet`, with a
# row per grid point (the config fields as `section.key` columns, and summaries: final loss, learned rank, escape
# times, plateaus, jumps). Grid axes over stackable hyper-parameters (here `init.gamma`) are vectorised on the
# replica axis of one compiled run; other axes (here `network.width`) make separate runs. A rerun into the same
# directory skips finished runs.
#
# The question: [J]'s transition in the initialisation scale. With entries of variance σ² = w^−γ,
# small γ is the lazy regime (all modes learned together, no plateau) and large γ the saddle-to-saddle regime
# (one jump of the rank of W per mode, separated by plateaus that lengthen with γ and with the width).

# %%
import shutil
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from dask.distributed import Client, LocalCluster

import dlnlab

# %%
base = dlnlab.Config.from_dict({
    "teacher": {"d_in": 6, "d_out": 6, "singular_values": [3.0, 1.5, 0.75]},
    "network": {"depth": 3, "width": 16},
    "init": {"kind": "gaussian", "gamma": 1.0},
    "dynamics": {"kind": "sgd", "lr": 0.02, "batch_size": 4, "t_max": 30.0},
    "record": {"n_times": 60},
    "ensemble": {"replicas": 4, "seed": 0},
})
grid = {"init.gamma": [0.5, 1.0, 1.5, 2.0, 2.5], "network.width": [8, 16, 32]}
out = tempfile.mkdtemp(prefix="dlnlab-sweep-")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook without ipywidgets

# %% [markdown]
# ## The cluster
#
# Two worker processes with one thread each (JAX is not fork-safe: Dask's nanny starts its workers with
# `spawn`). The sweep accepts the `Client` itself as executor (anything with `submit`); for a remote cluster, pass
# `executor="dask", address="tcp://HOST:8786"`, or run `dlnlab sweep CONFIG --grid ... --executor dask`.

# %%
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
        Client(cluster) as client:
    result = dlnlab.sweep(base, grid, executor=client, out=out, progress=False).raise_unless_done()
print(f"{len(result.table)} grid points in {result.n_done} runs (one per width); datasets in {out}/runs/")

# %% [markdown]
# ## The table
#
# `results.parquet` is an ordinary parquet file (`result.table` is the same table in memory):

# %%
table = pd.read_parquet(f"{out}/results.parquet")
columns = ["network.width", "init.gamma", "loss_final_median", "n_jumps_median", "jump_time_1", "jump_time_2",
           "jump_time_3"]
table[columns].sort_values(["network.width", "init.gamma"])

# %% [markdown]
# ## The phase diagram
#
# Left, the number of rank jumps of W (`n_jumps_median`, from the plateau table: median over the replicas of a
# grid point): none or one in the lazy regime (γ ≤ 1: the initial map already has a high rank and the modes are
# learned together), three — one per teacher mode — in the saddle-to-saddle regime. Right, the time from the first
# to the third jump where there are three: the plateaus lengthen as γ and the width grow.

# %%
jumps = table.pivot(index="init.gamma", columns="network.width", values="n_jumps_median")
spread = table.assign(spread=table.jump_time_3 - table.jump_time_1).pivot(
    index="init.gamma", columns="network.width", values="spread")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, data, title in ((axes[0], jumps, "rank jumps of W (median)"),
                        (axes[1], spread, "t(third jump) − t(first jump)")):
    image = ax.imshow(data.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(data.shape[1]), [str(w) for w in data.columns])
    ax.set_yticks(range(data.shape[0]), [f"{g:g}" for g in data.index])
    ax.set(xlabel="width w", ylabel="γ  (σ² = w^−γ)", title=title)
    for (i, j), value in np.ndenumerate(data.to_numpy(dtype=float)):
        ax.text(j, i, "—" if np.isnan(value) else f"{value:.3g}", ha="center", va="center", color="w")
    fig.colorbar(image, ax=ax)
fig.tight_layout()

# %% [markdown]
# Each run's dataset is kept: `result.dataset(run_id)` (or `dlnlab.load(f"{out}/runs/{run_id}/dataset.zarr")`) for a
# closer look at one grid point, e.g. the staircase of the widest network at the largest γ:

# %%
row = table.sort_values(["network.width", "init.gamma"]).iloc[-1]
ds = result.dataset(row.run_id)
ax = ds.where(ds.init_gamma == row["init.gamma"], drop=True).dln.plot_loss(xscale="log")
ax.set_title(f"width {row['network.width']}, γ = {row['init.gamma']:g}")
plt.show()

# %% [markdown]
# The sweep directory of this tutorial was a temporary one:

# %%
shutil.rmtree(out)
