"""Issue 19 items 2 and 3: faults of the output and one writer per output directory.

* No space left (an injected ``ENOSPC`` from the writer), permission denied and a read-only directory (``chmod``,
  or an injected ``EACCES`` when the tests run as root, for whom ``chmod`` denies nothing): ``dlnlab train`` prints
  one line (what failed, the path, what to do), exits 1, no traceback; a run that finished computing keeps its
  result in the temp dir, named in the message, and the same command after the fault saves it without computing.
* A checkpoint that cannot be written (disk full) is warned about; the run goes on.
* Two processes: a second writer of a directory is refused naming the first (pid, host, command), also by
  ``dlnlab train``; the lock of a SIGKILLed process is taken over.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import dlnlab
from dlnlab import storage
from dlnlab.cli import app
from dlnlab.config import config_to_toml, load_config
from dlnlab.errors import OutputError, OutputLockedError

TOML = """
[teacher]
d_in = 3
d_out = 2
singular_values = [1.0, 0.5]
[network]
depth = 2
width = 3
[init]
kind = "gaussian"
gamma = 1.0
[dynamics]
kind = "gd"
lr = 0.05
steps = 40
[record]
n_times = 5
observables = ["loss"]
[ensemble]
replicas = 2
seed = {seed}
"""


@pytest.fixture
def config_file(tmp_path, request):
    f = tmp_path / "c.toml"
    f.write_text(TOML.format(seed=abs(hash(request.node.name)) % 10_000))  # a key of its own per test
    yield f
    storage.discard_kept(config_to_toml(load_config(f)))


def _one_line(res):
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert res.exit_code == 1, res.output
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_disk_full_keeps_the_result_and_the_rerun_saves_it_without_computing(config_file, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_save = storage.save

    def full_disk(ds, path):
        if out in (path, *path.parents):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_save(ds, path)

    monkeypatch.setattr(storage, "save", full_disk)
    line = _one_line(CliRunner().invoke(app, ["train", str(config_file), "--out", str(out), "--no-progress"]))
    key = config_to_toml(load_config(config_file))
    kept = storage.kept_result(key)
    assert kept is not None
    assert "writing the dataset failed" in line and str(out / "dataset.zarr") in line
    assert "No space left on device" in line and f"kept in {kept}" in line and "free space" in line
    computed = storage.load(kept)

    monkeypatch.setattr(storage, "save", real_save)  # space freed; nothing may be recomputed now
    monkeypatch.setattr("dlnlab.engines.simulate", lambda *a, **k: pytest.fail("recomputed"))
    res = CliRunner().invoke(app, ["train", str(config_file), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"saving the result kept in {kept}" in res.output
    xr.testing.assert_identical(storage.load(out / "dataset.zarr"), computed)
    assert storage.kept_result(key) is None and not (out / ".dlnlab.lock").exists()


def test_read_only_output_is_one_line_before_computing(config_file, tmp_path, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    if os.geteuid() == 0:  # root ignores the mode: inject what the kernel would answer
        real_mkdir = os.mkdir

        def denied(path, *a, **k):
            if str(parent) in str(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_mkdir(path, *a, **k)

        monkeypatch.setattr(os, "mkdir", denied)
    monkeypatch.setattr("dlnlab.engines.simulate", lambda *a, **k: pytest.fail("computed into an unwritable out"))
    try:
        line = _one_line(CliRunner().invoke(app, ["train", str(config_file), "--out", str(parent / "out")]))
    finally:
        parent.chmod(0o700)
    assert "writing the output failed" in line and str(parent / "out") in line
    assert "Permission denied" in line and "make the directory writable" in line


@pytest.mark.parametrize("code, advice", [(errno.EROFS, "read-only"), (errno.ENOENT, "vanished")])
def test_output_error_says_what_to_do(code, advice):
    err = storage.output_error(OSError(code, os.strerror(code), "/x/y"), "writing the dataset")
    assert str(err).startswith("writing the dataset failed: /x/y: ") and advice in str(err)


def test_failed_checkpoint_write_warns_and_the_run_goes_on(config_file, tmp_path, monkeypatch):
    cfg = load_config(config_file)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dlnlab.checkpoint, "write", full)
    with pytest.warns(UserWarning, match="could not write the checkpoint"):
        ds = dlnlab.simulate(cfg, progress=False, checkpoint=tmp_path / "ck.npz", checkpoint_every=0)
    assert ds.attrs["complete"] == 1 and ds.sizes["t"] == 5 and np.all(np.isfinite(ds["loss"].values))


HOLDER = textwrap.dedent("""
    import sys
    from dlnlab.storage import output_lock
    with output_lock(sys.argv[1], "holder of the test"):
        print("locked", flush=True)
        sys.stdin.read()
""")


def _holder(directory):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_naming_the_first(tmp_path, config_file):
    d = tmp_path / "shared"
    proc = _holder(d)
    try:
        with pytest.raises(OutputLockedError) as info, storage.output_lock(d):
            pass
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "holder of the test" in msg
        line = _one_line(CliRunner().invoke(app, ["train", str(config_file), "--out", str(d)]))
        assert f"pid {proc.pid}" in line and "being written by another process" in line
        assert not (d / "dataset.zarr").exists()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    with storage.output_lock(d) as owner:  # released: free again
        assert owner["pid"] == os.getpid()
    assert not (d / storage.LOCK).exists()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    d = tmp_path / "shared"
    proc = _holder(d)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert f'"pid": {proc.pid}' in (d / storage.LOCK).read_text()  # left behind by the dead process
    with storage.output_lock(d, "taker") as owner:
        assert owner["pid"] == os.getpid()
        assert '"command": "taker"' in (d / storage.LOCK).read_text()
        with pytest.raises(OutputLockedError), storage.output_lock(d):  # held now: another opener is refused
            pass


def test_writer_turns_io_faults_into_output_errors(tmp_path):
    with pytest.raises(OutputError) as info, storage.writer(tmp_path / "w"):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / "w" / "f"))
    assert "quota" in str(info.value)
    with pytest.raises(ValueError), storage.writer(tmp_path / "w"):  # not an I/O fault: unchanged
        raise ValueError("a bug")


def test_save_removes_the_temporary_store_of_a_killed_writer(tmp_path):
    """A ``kill -9`` during :func:`storage.save` leaves ``.NAME.PID.*`` beside the result (found by the fault
    suite, tests/test_faults.py); the next save removes it when that process is dead, not when it is alive."""
    ds = xr.Dataset({"x": ("t", np.arange(3.0))})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".dataset.zarr.{dead.pid}.abc123"
    live = tmp_path / f".dataset.zarr.{os.getpid()}.def456"
    for d in (stale, live):
        (d / "store.zarr").mkdir(parents=True)
    storage.save(ds, tmp_path / "dataset.zarr")
    assert not stale.exists() and live.exists()
    xr.testing.assert_identical(dlnlab.load(tmp_path / "dataset.zarr"), ds)
