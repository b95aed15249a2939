"""Executors: where the jobs run — ``local`` (a spawn process pool), ``dask`` (a scheduler or a local cluster),
``slurm`` (submitit), ``serial`` (this process), or an executor object — behind one :class:`Backend` (submit, wait,
restart, close) for the driver."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import ConfigError

EXECUTORS = ("local", "dask", "slurm", "serial")


class SerialExecutor(cf.Executor):
    """Runs each submitted call immediately in the calling process (debugging, small in-process sweeps)."""

    def submit(self, fn, /, *args, **kwargs):
        f = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - delivered through the future; Ctrl-C propagates at once
            f.set_exception(exc)
        return f


def _local_pool(max_workers: int) -> cf.ProcessPoolExecutor:
    # JAX is not fork-safe: start workers with spawn.
    return cf.ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"))


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor", "slurm", "an installed submitit: pip install 'dlnlab[slurm]'") from None
    return submitit


def _require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise ConfigError("--executor", "slurm", "a machine with SLURM (sbatch on PATH); use local or dask here")


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError("--executor", "dask", "an installed dask.distributed: pip install 'dask[distributed]'") from None
    return distributed


def _unknown_executor(executor) -> ConfigError:
    return ConfigError("executor", executor, "local, dask, slurm, serial, or an object with submit(fn, *args)")


def _submitit_params(slurm: Mapping | None) -> dict:
    generic = {"timeout_min", "cpus_per_task", "mem_gb", "gpus_per_node", "nodes", "tasks_per_node", "name",
               "stderr_to_stdout"}
    params = {"timeout_min": 60, "cpus_per_task": 1}
    for k, v in (slurm or {}).items():
        params[k if (k in generic or k.startswith("slurm_")) else f"slurm_{k}"] = v
    return params


def slurm_executor(out: Path, slurm: Mapping | None = None, cluster: str = "slurm"):
    """A submitit ``AutoExecutor`` writing its logs to ``OUT/slurm``. ``slurm``: parameters, e.g.
    ``{"partition": "gpu", "timeout_min": 120, "mem_gb": 16, "gpus_per_node": 1, "array_parallelism": 64}``
    (bare SLURM names get the ``slurm_`` prefix submitit expects)."""
    submitit = _import_submitit()
    if cluster == "slurm":
        _require_sbatch()
    ex = submitit.AutoExecutor(folder=str(Path(out) / "slurm" / "%j"), cluster=cluster)
    ex.update_parameters(**_submitit_params(slurm))
    return ex


@dataclasses.dataclass
class Backend:
    submit: Any  # (fn, *args) -> handle
    kind: str  # cf | dask | poll
    close: Any = None
    restart: Any = None  # for an owned local pool: () -> None (after BrokenProcessPool)
    native_retries: bool = False
    batch: Any = None  # context manager for submitting many jobs at once (submitit job arrays)


def check_executor(executor, address) -> None:
    """Input errors of the executor choice, raised before anything is written."""
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ConfigError("--executor", executor, "one of " + ", ".join(EXECUTORS))
        if address is not None and executor != "dask":
            raise ConfigError("--address", address, "given only with --executor dask")
        if executor == "dask":
            _import_distributed()
        if executor == "slurm":
            _import_submitit()
            _require_sbatch()
    elif executor is not None and not callable(getattr(executor, "submit", None)):
        raise _unknown_executor(executor)


def make_backend(executor, *, address, max_workers, out: Path, retries: int, slurm) -> Backend:
    if executor is None:
        executor = "local"
    check_executor(executor, address)
    if isinstance(executor, str):
        if executor == "serial":
            return Backend(SerialExecutor().submit, "cf")
        if executor == "local":
            state = {"pool": _local_pool(max_workers)}

            def restart():
                state["pool"].shutdown(wait=False, cancel_futures=True)
                state["pool"] = _local_pool(max_workers)

            return Backend(lambda fn, *a: state["pool"].submit(fn, *a), "cf",
                            close=lambda: state["pool"].shutdown(wait=True, cancel_futures=True), restart=restart)
        if executor == "dask":
            distributed = _import_distributed()
            Client, LocalCluster = distributed.Client, distributed.LocalCluster
            if address is not None:
                try:
                    client = Client(address, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise ConfigError("--address", address, f"a reachable Dask scheduler ({exc})") from None
                cluster = None
            else:
                cluster = LocalCluster(n_workers=max_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
                client = Client(cluster)

            def close():
                client.close()
                if cluster is not None:
                    cluster.close()

            return _dask_backend(client, retries, close)
        if executor == "slurm":
            return _submitit_backend(slurm_executor(out, slurm))
    # an executor object
    if _is_dask_client(executor):
        return _dask_backend(executor, retries, None)
    if _is_submitit(executor):
        return _submitit_backend(executor)
    if isinstance(executor, cf.Executor):
        return Backend(executor.submit, "cf")
    if callable(getattr(executor, "submit", None)):
        return Backend(executor.submit, "poll")
    raise _unknown_executor(executor)


def _is_dask_client(obj) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("distributed") and type(obj).__name__ == "Client"


def _is_submitit(obj) -> bool:
    return (type(obj).__module__ or "").startswith("submitit")


def _dask_backend(client, retries, close) -> Backend:
    def submit(fn, *args):
        return client.submit(fn, *args, retries=retries, pure=False, key=f"dlnlab-sweep-{uuid.uuid4().hex}")

    return Backend(submit, "dask", close=close, native_retries=True)


def _submitit_backend(ex) -> Backend:
    return Backend(ex.submit, "poll", batch=getattr(ex, "batch", None))


def wait_some(backend: Backend, handles: list, timeout: float) -> list:
    if not handles:
        return []
    if backend.kind == "cf":
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)
    if backend.kind == "dask":
        from distributed import wait

        try:
            done, _ = wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        return list(done)
    deadline = time.monotonic() + timeout
    while True:
        done = [h for h in handles if h.done()]
        if done or time.monotonic() >= deadline:
            return done
        time.sleep(min(0.5, timeout))
