"""The ``ds.dln`` accessor on real small runs of the three simulators: full network (aligned gradient flow through
two saddles, against the closed-form mode times and the saddle levels), per-mode SDE and diagonal SGD (against
the same selections done by hand); plots saved with the Agg backend, their lines checked; clear errors where a
dataset lacks what a method needs.

Tolerances: the escape time of a mode is the first *record* time at which m_α ≥ s_α/2, so it lies within one
record interval after the closed-form half-time (gradient flow at rtol 1e-9: solver error ≪ the interval); the
median of m_α over the late records is the closed form's to 1e-9 (the solver's tolerance). The plateau table's
jump half-time interpolates linearly between records where the sum of the top k singular values passes half of
what the jump adds; with plateaus this separated (σ_1 converged during jump 2) that is the closed-form half-time
up to the interpolation error at the jump's inflection point: 1e-5 seen, held at 1e-3 (a fiftieth of a record
interval). Plateau
losses (medians over the plateau's core) are the saddle levels up to the next mode's growth, m/s ~ m₀^(1/4) at the
core's middle for these s: 2.4e-4 relative at m₀ = 1e-16, held at 1e-3 (a wrong level is 0.5 away).
"""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import dlnlab
from dlnlab.config import Config, ConfigError, config_to_toml
from dlnlab.engines import diagonal_config, mode_config, simulate_diagonal, simulate_modes
from dlnlab.model import DiagonalModel
from dlnlab.theory import mode_flow_fn, mode_time
from dlnlab.theory.saddle_sequence import saddle_losses

matplotlib.use("Agg")

S, M0, T_MAX, N_TIMES = (2.0, 1.0), 1e-16, 40.0, 801


@pytest.fixture(scope="module")
def flow():
    """Aligned depth-2 gradient flow from m₀ = 1e-16 on s = (2, 1): two plateaus, then the global minimum."""
    cfg = Config.from_dict({
        "teacher": {"d_in": 2, "d_out": 2, "singular_values": list(S), "basis": "identity"},
        "network": {"depth": 2, "width": 2},
        "init": {"kind": "aligned", "scale": M0, "hidden_basis": "identity"},
        "dynamics": {"kind": "flow", "t_max": T_MAX, "rtol": 1e-9},
        "record": {"n_times": N_TIMES, "spacing": "linear", "observables": ["loss", "singular_values", "mode_strength"]},
        "ensemble": {"replicas": 2},
    })
    return cfg, dlnlab.simulate(cfg, progress=False)


@pytest.fixture(scope="module")
def modes():
    cfg = mode_config([2.0, 0.5], depth=2, lr=0.01, batch_size=1, label_noise=0.3, m0=0.01, kind="sde", steps=600,
                      n_times=61, spacing="linear", replicas=16, noise="exact", scheme="em")
    return simulate_modes(cfg, progress=False)


@pytest.fixture(scope="module")
def diagonal():
    model = DiagonalModel(depth=2, n_paths=1, s=1.0, label_noise=0.5)
    return simulate_diagonal(diagonal_config(model, kind="sgd", lr=0.05, t_max=20.0, n_times=41, replicas=16,
                                             init_scale=0.5))


def test_flow_summary_against_closed_form(flow):
    cfg, ds = flow
    assert ds.dln.config.to_dict() == cfg.to_dict()
    (row,) = ds.dln.summary().to_dict("records")
    assert row["n_replicas"] == 2 and row["n_diverged"] == 0 and row["t_final"] == T_MAX
    assert row["learned_rank_median"] == 2 and row["loss_final_mean"] < 1e-12
    dt = T_MAX / (N_TIMES - 1)
    t = ds["t"].values
    tail = mode_flow_fn([M0] * 2, list(S), 1.0, 2)(t[t >= T_MAX / 2])  # the records of the stationary moments
    for j, s in enumerate(S, start=1):
        t_half = mode_time(s / 2, M0, s, 1.0, 2)
        assert t_half <= row[f"escape_time_{j}"] < t_half + dt, (j, t_half, row[f"escape_time_{j}"])
        assert row[f"escaped_{j}"] == 1.0 and abs(row[f"m_median_{j}"] - np.median(tail[:, j - 1])) < 1e-9
        assert abs(row[f"jump_time_{j}"] - t_half) <= 1e-3  # the plateau table's jump half-times
    t_end = ds.dln.plateaus().groupby("replica")["t_end"].apply(lambda x: np.sort(x.to_numpy())[:-1])
    np.testing.assert_array_equal([row["jump_time_1"], row["jump_time_2"]], np.median(np.stack(t_end), axis=0))
    assert row["n_jumps_median"] == 2


def test_flow_plateaus_sit_at_the_saddle_levels(flow):
    _, ds = flow
    tab = ds.dln.plateaus()
    levels = saddle_losses(ds["s"].values, ds["input_variance"].values)  # ½ Σ_{i>k} s_i²: 2.5, 0.5, 0
    np.testing.assert_allclose(levels, [2.5, 0.5, 0.0])
    for _, g in tab.groupby("replica"):
        g = g.sort_values("plateau")
        assert g["plateau"].tolist() == [0, 1, 2] and g["learned_mode"].tolist()[:2] == [1, 2]
        np.testing.assert_allclose(g["loss"].to_numpy()[:2], levels[:2], rtol=1e-3)


def test_flow_plots(flow, tmp_path):
    _, ds = flow
    m = ds["mode_strength"].values
    ax = ds.dln.plot_modes()
    medians = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    targets = sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--")
    assert len(medians) == ds.sizes["mode"] and targets == sorted(ds["s"].values)
    np.testing.assert_array_equal(medians[0].get_ydata(), np.median(m[:, :, 0], axis=0))
    ax.figure.savefig(tmp_path / "modes.png")
    ax = ds.dln.plot_staircase()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), np.median(ds["loss"].values, axis=0))
    levels = [ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == ":"]
    np.testing.assert_allclose(levels, [2.5, 0.5])  # the level 0 has no place on a log axis
    assert ax.get_yscale() == "log"
    ax.figure.savefig(tmp_path / "staircase.png")
    fig, axes = plt.subplots(1, 2)
    assert ds.dln.plot_loss(axes[1], yscale="linear") is axes[1]
    fig.savefig(tmp_path / "loss.png")
    assert all((tmp_path / f).stat().st_size > 0 for f in ("modes.png", "staircase.png", "loss.png"))
    plt.close("all")


def test_per_mode_dataset(modes, tmp_path):
    ds = modes
    t_burn = 3.0
    x = ds.dln.stationary(t_burn)  # default: mode_strength
    assert x.dims == ("replica", "t", "mode") and x.sizes["replica"] == 16 and float(x.t.min()) >= t_burn
    np.testing.assert_array_equal(x.values, ds["mode_strength"].values[:, ds.t.values >= t_burn])
    (row,) = ds.dln.summary().to_dict("records")  # summarize with the run's config
    tail = ds["mode_strength"].values[:, ds.t.values >= 0.5 * ds.t.values[-1]]
    assert row["n_replicas"] == 16 and row["m_mean_1"] == pytest.approx(tail[:, :, 0].mean(), rel=1e-12)
    ax = ds.dln.plot_modes(quantiles=(0.25, 0.75))
    ax.figure.savefig(tmp_path / "modes.png")
    plt.close("all")
    with pytest.raises(ConfigError, match="'loss'.*plot_modes"):  # a ConfigError is also a ValueError
        ds.dln.plot_loss()
    with pytest.raises(ConfigError, match="singular_values"):
        ds.dln.plateaus()


def test_diagonal_dataset(diagonal, tmp_path):
    ds = diagonal
    x = ds.dln.stationary(t_burn=10.0)  # default: output
    np.testing.assert_array_equal(x.values, ds["output"].values[:, ds.t.values >= 10.0])
    flagged = ds.assign(diverged=("replica", np.arange(16) == 3))  # a diverged replica is left out
    np.testing.assert_array_equal(flagged.dln.stationary(10.0).replica.values, np.delete(np.arange(16), 3))
    (row,) = ds.dln.summary().to_dict("records")  # no config: the generic summary
    assert row["n_replicas"] == 16 and row["loss_final_mean"] == pytest.approx(ds["loss"].values[:, -1].mean())
    with_config = ds.assign_attrs(config=config_to_toml(Config.of("diagonal", depth=2, kind="sgd", lr=0.05,
                                                                  t_max=20.0, replicas=16)))
    assert with_config.dln.config.model == "diagonal"  # a diagonal model's config: the generic summary too
    assert with_config.dln.summary().to_dict("records") == [row]
    ax = ds.dln.plot_loss()
    ax.figure.savefig(tmp_path / "loss.png")
    plt.close("all")
    for call, match in [(ds.dln.plot_modes, "'mode_strength'.*'output'"), (ds.dln.plot_staircase, "'s' and"),
                        (lambda: ds.dln.stationary(30.0), "t_burn = 30.0"),
                        (lambda: ds.dln.stationary(1.0, "weights_x"), "'weights_x'.*output"),
                        (lambda: ds.dln.summary(tail=0.2), "config")]:
        with pytest.raises(ConfigError, match=match):
            call()
