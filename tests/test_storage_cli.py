"""Requirement (f): results round-trip through zarr exactly, export to netCDF, and the CLI runs a config end
to end, applies ``--set`` overrides and reports invalid input as one line with exit code 2.

All comparisons here are exact (``assert_identical`` / ``array_equal``): storage must not change a bit."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import dlnlab
from dlnlab.cli import app
from dlnlab.config import config_to_toml

DLNLAB = str(Path(sys.executable).with_name("dlnlab"))  # the console script of this environment


@pytest.fixture(scope="module")
def stacked_config():
    return dlnlab.Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 2, "singular_values": [1.5, 0.5], "label_noise": [0.0, 0.2]},
        "network": {"depth": 2, "width": 4},
        "init": {"kind": "gaussian", "gamma": [1.0, 2.0]},
        "dynamics": {"kind": "sgd", "lr": [0.02, 0.05], "t_max": 1.0, "batch_size": 2},
        "record": {"n_times": 10},
        "ensemble": {"replicas": 2, "seed": 3},
    })


@pytest.fixture(scope="module")
def stacked_ds(stacked_config):
    return dlnlab.simulate(stacked_config, progress=False)


@pytest.fixture(scope="module")
def flow_ds():
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 3, "d_out": 2, "singular_values": [1.5, 0.5]},
        "network": {"depth": 2, "width": 3},
        "init": {"kind": "aligned", "scale": [0.01, 0.1]},
        "dynamics": {"kind": "flow", "t_max": 3.0},
        "record": {"n_times": 8, "observables": ["loss", "mode_strength", "balancedness"]},
    })
    return dlnlab.simulate(cfg, progress=False)


def test_stacked_replica_coords_follow_grid(stacked_config, stacked_ds):
    # The replica axis is replica_grid() in order (exact).
    grid = stacked_config.replica_grid()
    assert stacked_ds.sizes["replica"] == len(grid) == 16
    for coord, key in [("lr", "dynamics.lr"), ("label_noise", "teacher.label_noise"), ("init_gamma", "init.gamma"),
                       ("member", "member")]:
        np.testing.assert_array_equal(stacked_ds[coord].values, [row[key] for row in grid])


@pytest.mark.parametrize("which", ["stacked_ds", "flow_ds"])
def test_zarr_round_trip_identical(which, request, tmp_path):
    ds = request.getfixturevalue(which)
    path = dlnlab.save(ds, tmp_path / "run.zarr")
    back = dlnlab.load(path)
    xr.testing.assert_identical(back, ds)  # values, dtypes, coords and attrs
    for name in ds.variables:
        assert back[name].dtype == ds[name].dtype, name
    # Saving again over an existing store replaces it atomically.
    dlnlab.save(ds.isel(replica=slice(0, 1)), path)
    assert dlnlab.load(path).sizes["replica"] == 1


@pytest.mark.parametrize("which", ["stacked_ds", "flow_ds"])
def test_netcdf_export(which, request, tmp_path):
    ds = request.getfixturevalue(which)
    path = dlnlab.export_netcdf(ds, tmp_path / "run.nc")
    with xr.open_dataset(path, engine="h5netcdf") as nc:
        nc = nc.load()
    assert set(nc.variables) == set(ds.variables)
    for name in ds.variables:
        if ds[name].dtype == bool:
            assert nc[name].dtype == np.int8 and nc[name].attrs.get("dlnlab_bool") == 1, name
            np.testing.assert_array_equal(nc[name].values.astype(bool), ds[name].values)
        else:
            assert nc[name].dtype == ds[name].dtype, name
            np.testing.assert_array_equal(nc[name].values, ds[name].values)
    assert nc.attrs["config"] == ds.attrs["config"]
    assert nc.attrs["seed"] == ds.attrs["seed"]
    assert ds["finite"].dtype == bool  # the export does not modify the dataset it is given


def test_attrs_config_reloads(stacked_config, stacked_ds):
    # The config stored in attrs is the resolved config (TOML) and reloads to an equal Config.
    assert dlnlab.Config.from_dict(tomllib.loads(stacked_ds.attrs["config"])) == stacked_config


# ---------------------------------------------------------------------------------------------------------
# CLI

TRAIN_TOML = """
[teacher]
d_in = 3
d_out = 2
singular_values = [1.0, 0.5]
label_noise = 0.1
[network]
depth = 2
width = 4
[init]
kind = "gaussian"
gamma = 1.5
[dynamics]
kind = "sgd"
lr = 0.01
batch_size = 2
steps = 40
[record]
n_times = 6
observables = ["loss", "mode_strength"]
[ensemble]
replicas = 2
seed = 4
"""


def _run(*args, cwd=None):
    return subprocess.run([DLNLAB, *args], check=False, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_cli_train_end_to_end(tmp_path):
    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text(TRAIN_TOML)
    out = tmp_path / "out"
    sets = ["--set", "dynamics.lr=0.02", "--set", "ensemble.replicas=3", "--set", "dynamics.kind=sde"]
    proc = _run("train", str(cfg_path), *sets, "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (out / "dataset.zarr").is_dir() and (out / "config.toml").is_file()
    saved = dlnlab.load_config(out / "config.toml")
    # The saved config is the resolved one: the file plus the overrides, and nothing else changed.
    expected = dlnlab.load_config(cfg_path, ["dynamics.lr=0.02", "ensemble.replicas=3", "dynamics.kind=sde"])
    assert saved == expected
    assert (saved.dynamics.lr, saved.ensemble.replicas, saved.dynamics.kind) == (0.02, 3, "sde")
    assert saved.teacher.label_noise == 0.1 and saved.dynamics.steps == 40
    ds = dlnlab.load(out / "dataset.zarr")
    assert ds.sizes["replica"] == 3 and ds.attrs["dynamics"] == "sde"
    np.testing.assert_array_equal(ds["lr"].values, 0.02)
    assert ds.attrs["config"] == config_to_toml(expected)
    assert int(ds["step"].values[-1]) == 40
    assert bool(ds["finite"].all())
    assert "dataset.zarr" in proc.stdout


def test_cli_info():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    assert "backend:" in proc.stdout and "jax" in proc.stdout
    assert "float64" in proc.stdout


def test_cli_bad_init_path_is_one_line(tmp_path):
    # Found only when the run starts (regression: this used to end in a traceback with exit code 1).
    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text(TRAIN_TOML.replace('kind = "gaussian"\ngamma = 1.5', 'kind = "file"\npath = "missing.npz"'))
    proc = _run("train", str(cfg_path), "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "init.path" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_bad_value_subprocess(tmp_path):
    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text(TRAIN_TOML)
    proc = _run("train", str(cfg_path), "--set", "dynamics.batch_size=0", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "dynamics.batch_size" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing is written for an invalid config


# Every invalid config the issue lists (and a few input errors of the CLI itself): exit code 2, one line
# naming the field, no traceback. The library-level table (ConfigError.field) is in test_config.py.
CLI_INVALID = {
    "lr": (["--set", "dynamics.lr=-0.5"], "dynamics.lr"),
    "lr-zero": (["--set", "dynamics.lr=0.0"], "dynamics.lr"),
    "lr-nan": (["--set", "dynamics.lr=nan"], "dynamics.lr"),
    "lr-inf": (["--set", "dynamics.lr=inf"], "dynamics.lr"),
    "batch-zero": (["--set", "dynamics.batch_size=0"], "dynamics.batch_size"),
    "batch-above-dataset": (["--set", 'data.kind="finite"', "--set", "data.n_samples=3",
                             "--set", "dynamics.batch_size=4"], "dynamics.batch_size"),
    "depth-zero": (["--set", "network.depth=0"], "network.depth"),
    "width-zero": (["--set", "network.width=0"], "network.width"),
    "width-entry-zero": (["--set", "network.depth=3", "--set", "network.width=[4, 0]"], "network.width[1]"),
    "wrong-type-int": (["--set", 'network.depth="3"'], "network.depth"),
    "wrong-type-float": (["--set", "ensemble.replicas=2.5"], "ensemble.replicas"),
    "bool": (["--set", "data.whiten=1"], "data.whiten"),
    "inconsistent-widths": (["--set", "network.width=[4, 4]"], "network.width"),
    "inconsistent-input-variance": (["--set", "teacher.input_variance=[1.0, 2.0]"], "teacher.input_variance"),
    "too-many-singular-values": (["--set", "teacher.singular_values=[3.0, 2.0, 1.0]"], "teacher.singular_values"),
    "gamma-and-scale": (["--set", "init.scale=0.1"], "init.gamma"),
    "syntax": (["--set", "dynamics.lr"], "--set"),
    "unknown-key": (["--set", "network.widht=3"], "network.widht"),
    "unknown-section": (["--set", "optimizer.kind=adam"], "optimizer"),
    "missing-file": ([], "CONFIG"),
    "bad-toml": ([], "CONFIG"),
    "out-is-file": ([], "--out"),
}


@pytest.mark.parametrize("case", list(CLI_INVALID))
def test_cli_invalid_input_exits_2(case, tmp_path):
    cfg_path = tmp_path / "run.toml"
    cfg_path.write_text(TRAIN_TOML)
    out = tmp_path / "out"
    sets, field = CLI_INVALID[case]
    args = [str(tmp_path / "missing.toml") if case == "missing-file" else str(cfg_path), *sets]
    if case == "bad-toml":
        cfg_path.write_text("[teacher\nd_in = 3\n")
    if case == "out-is-file":
        out.write_text("not a directory")
    result = CliRunner().invoke(app, ["train", *args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an uncaught exception
    assert field in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert case == "out-is-file" or not out.exists()  # nothing is written for invalid input


def test_cli_reproduce_rejects_unknown_paper(tmp_path):
    bad = CliRunner().invoke(app, ["reproduce", "--out", str(tmp_path / "rep"), "--paper", "X"])
    assert bad.exit_code == 2 and "--paper" in bad.output and "Traceback" not in bad.output

