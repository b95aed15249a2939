"""Size before work: the memory a run will hold, estimated before it allocates, and a refusal when it cannot fit.

A run holds its carried state (weights and step counters, per replica), its records (every recorded variable at
every record time, per replica) and the compiled chunk's buffers, on top of what the process already holds
(Python, JAX, compiled programs). Reading :func:`._core.execute`, the peak is

    held + RUNTIME_BYTES + STATE_COPIES · R · state + RECORD_COPIES · R · n · record + R · chunk · record

* the state is held by the program (its initial value), the chunk's input and its output, and XLA's carry and
  per-step temporaries (gradients, minibatch): :data:`STATE_COPIES`;
* every record is held once by the chunks' outputs and once more while :func:`._core.assemble` concatenates them
  (and while a checkpoint concatenates those so far): :data:`RECORD_COPIES`;
* a chunk's observations are held once more while they are gathered from the devices;
* ``held`` includes the compiled programs (a few hundred MB on CPU), which is why the dry run measures it after
  compiling its probes.

Measured against the peak resident memory of ``dlnlab train`` at three sizes: ``benchmarks/memory_estimate.md``.

Three estimates use this model, from the cheapest:

* :func:`check_config` (from the config alone, before the replica table is built; called by
  :meth:`._core.Replicas.of`): a floor — the weights, the replica table and one number per record — that refuses
  the gross mistakes (an extra zero on ``ensemble.replicas``) before anything is allocated;
* :func:`measured` (checked by :func:`._core.execute` once the initial state and its first observation exist,
  before the first step): the sizes measured on those arrays, so exact for the state and the records;
* :func:`.dryrun.estimate_run` (``dlnlab train --dry-run``): the same sizes measured on a small probe ensemble,
  scaled to the run's replicas, plus a time estimate from a short timed probe.

A run whose estimate exceeds the available memory raises :class:`~dlnlab.errors.InsufficientMemoryError`
naming ``ensemble.replicas``, ``record.n_times`` and the model's width, and the largest value of each that
fits. The available memory is ``MemAvailable`` of ``/proc/meminfo`` (or ``os.sysconf``), capped by a cgroup
limit; the environment variable ``DLNLAB_MEMORY_LIMIT`` (bytes, or ``512M``, ``4G``) replaces it.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, InsufficientMemoryError

#: Copies of the carried state at the peak: the program's initial state, the chunk's input and output, XLA's
#: carry and per-step temporaries (measured: ``benchmarks/memory_estimate.py``).
STATE_COPIES = 4
#: Copies of the records at the peak: the chunks' outputs and their concatenation into the dataset.
RECORD_COPIES = 2
#: Bytes a run holds at its peak beyond the terms above and the dry run's ``held``, whatever the size (the full-size
#: program's XLA buffers and the pages the allocator keeps after the chunks are freed): not derived but measured,
#: the gap between the peak RSS and the other terms was 0.14–0.19 GiB at 4000–25000 replicas
#: (``benchmarks/memory_estimate.md``; without it the estimate was 0.72–0.84 of the peak at 4000 replicas).
RUNTIME_BYTES = 160 * 2 ** 20
#: Bytes of one row of the replica table (a Python dict; measured with ``sys.getsizeof`` of its parts).
ROW_BYTES = 250

#: The config field that sets the size of a replica's state, per model.
WIDTH_FIELD = {"network": "network.width", "relu": "relu.hidden", "diagonal": "diagonal.n_paths",
               "regression": "regression.d", "modes": "modes.singular_values"}


# ---------------------------------------------------------------------------------------------------------
# Memory of the machine and of this process


def parse_bytes(text: str) -> int:
    """``"123"``, ``"512M"``, ``"4G"``, ``"1.5GiB"`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)(i?b)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise ConfigError("DLNLAB_MEMORY_LIMIT", text, "a number of bytes, e.g. 2000000000, 512M or 4G")
    return int(float(m.group(1)) * 1024 ** ("kmgt".find(m.group(2).lower()) + 1 if m.group(2) else 0))


def _cgroup_room() -> int | None:
    for limit, used in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap, now = Path(limit).read_text().strip(), Path(used).read_text().strip()
        except OSError:
            continue
        if cap.isdigit() and int(cap) < 1 << 60:
            return max(0, int(cap) - int(now))
    return None


def available_memory() -> int:
    """Bytes a run may still allocate: ``DLNLAB_MEMORY_LIMIT`` if set, else the system's available memory
    (``MemAvailable``), capped by the cgroup's limit."""
    env = os.environ.get("DLNLAB_MEMORY_LIMIT")
    if env:
        return parse_bytes(env)
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = _cgroup_room()
    return avail if room is None else min(avail, room)


def resident_memory() -> int:
    """This process's resident set size now, in bytes (``/proc/self/statm``; elsewhere its peak so far)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def human(n: float) -> str:
    """Bytes in words: ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover - unreachable


# ---------------------------------------------------------------------------------------------------------
# The footprint of a run


def combinations(config: Config) -> int:
    """The number of stacked hyper-parameter combinations (each with ``ensemble.replicas`` replicas)."""
    return math.prod(len(v) for v in config.stacked().values())


def replica_count(config: Config) -> int:
    """The number of replicas of ``config``, without building its replica table."""
    return combinations(config) * config.ensemble.replicas


def record_count(config: Config) -> int:
    """The number of records (with ``t = 0``) the config asks for (network flow to ``t_max = "auto"``: its
    ``record.n_times`` as a guess, since the records per decade depend on the run)."""
    times = config.record.times
    return len(times) + (times[0] != 0) if times is not None else config.record.n_times


def state_elements(config: Config) -> int:
    """Numbers in one replica's weights (the floor of its carried state)."""
    m = config.model
    if m == "network":
        dims = config.layer_dims
        return sum(a * b for a, b in itertools.pairwise(dims))
    if m == "modes":
        return config.modes.depth * config.n_modes
    if m == "diagonal":
        return config.diagonal.depth * config.diagonal.n_paths
    if m == "relu":
        return 2 * config.relu.d * config.relu.hidden
    return 2 * config.regression.d


def itemsize(config: Config) -> int:
    return 4 if config.model in ("network", "modes") and config.dynamics.precision == "float32" else 8


@dataclass(frozen=True)
class Footprint:
    """The sizes that set a run's memory: ``replicas``, ``records`` (record times) and ``chunk`` (records per
    compiled chunk); bytes per replica of the carried ``state`` and of one ``record``; ``held``: what the process
    holds besides (or already holds of) the run."""

    config: Config
    replicas: int
    records: int
    chunk: int
    state: float
    record: float
    held: int = 0
    state_copies: int = STATE_COPIES
    record_copies: int = RECORD_COPIES
    runtime: int = RUNTIME_BYTES

    def parts(self) -> dict:
        """Bytes of each term of the peak (see the module docstring)."""
        R = self.replicas
        return {"held": self.held, "runtime": self.runtime, "state": self.state_copies * R * self.state,
                "records": self.record_copies * R * self.records * self.record,
                "chunk": R * self.chunk * self.record}

    @property
    def peak(self) -> int:
        """The estimated peak resident memory of the process running it, in bytes."""
        return int(sum(self.parts().values()))

    def fitting(self, room: float) -> dict:
        """The largest ``ensemble.replicas``, ``record.n_times`` and width (each alone) with which the run's own
        memory (all but ``held``) stays within ``room`` bytes; ``None`` where none fits."""
        R, c = self.replicas, self.config
        sc, rc = self.state_copies, self.record_copies
        room -= self.runtime
        per_replica = sc * self.state + (rc * self.records + self.chunk) * self.record
        out = {"ensemble.replicas": int(room // per_replica) // combinations(c)}
        rest = room - sc * R * self.state
        out["record.n_times"] = (int(rest // (R * self.record * (rc + self.chunk / self.records)))
                                 if rest > 0 else 0)
        rest = room - (rc * self.records + self.chunk) * R * self.record
        field = WIDTH_FIELD[c.model]
        if c.model == "network" and rest > 0:  # state ∝ width² · (depth − 2) + width · (d_in + d_out)
            L, (d0, dL) = c.network.depth, (c.teacher.d_in, c.teacher.d_out)
            rest -= sc * R * (self.state - state_elements(c) * itemsize(c))  # counters, replica table
            per_w = max(0.0, rest) / (sc * R * itemsize(c))
            a, b = max(L - 2, 0), d0 + dL
            out[field] = int((-b + math.sqrt(b * b + 4 * a * per_w)) / (2 * a)) if a else int(per_w // b)
        elif c.model in ("relu", "diagonal", "regression") and rest > 0:
            out[field] = int(rest // (sc * R * self.state / _width(c)))
        return {k: v for k, v in out.items() if v is not None and v >= (2 if k == "record.n_times" else 1)}

    def check(self, available: int | None = None, *, allocated: int = 0, what: str = "this run") -> None:
        """Raise :class:`InsufficientMemoryError` when the run's memory beyond ``held`` and the ``allocated`` bytes
        it already holds exceeds ``available``."""
        available = available_memory() if available is None else available
        need = self.peak - self.held - allocated
        if need <= available:
            return
        c = self.config
        now = {"ensemble.replicas": c.ensemble.replicas, "record.n_times": self.records,
               WIDTH_FIELD[c.model]: _width(c)}
        fits = self.fitting(available)
        hints = [f"{k} = {v} (now {now[k]})" for k, v in fits.items() if v < now[k]]
        hint = "at most " + " or ".join(hints) if hints else "no smaller ensemble.replicas, record.n_times or width"
        raise InsufficientMemoryError(
            f"{what} needs ~{human(need)} of memory ({self.replicas} replicas × {self.records} records: state "
            f"{human(self.parts()['state'])}, records {human(self.parts()['records'] + self.parts()['chunk'])}), "
            f"{human(available)} available: {hint} fits; or set DLNLAB_MEMORY_LIMIT to allow more", need, available)


def _width(config: Config) -> int:
    m = config.model
    if m == "network":
        return max(config.hidden_widths, default=1)
    if m == "modes":
        return config.n_modes
    return {"relu": config.relu.hidden, "diagonal": config.diagonal.n_paths, "regression": config.regression.d}[m]


def config_floor(config: Config) -> Footprint:
    """The floor of a run's memory from its config alone: one copy of the weights, the replica table and one
    number per replica and record."""
    size = itemsize(config)
    return Footprint(config, replica_count(config), record_count(config), 0, state_elements(config) * size + ROW_BYTES,
                     size, state_copies=1, record_copies=1, runtime=0)


def check_config(config: Config) -> None:
    """Refuse a config whose floor (:func:`config_floor`) already exceeds the available memory."""
    config_floor(config).check(what="this run (at least)")


def measured(config: Config, R: int, records: int, chunk: int, state_leaves, observation: dict,
             held: int = 0) -> Footprint:
    """The footprint of a run of ``R`` replicas from the arrays of its state and of one observation (leading axis
    ``R``; arrays without it are shared and counted in ``held``)."""
    def per_replica(arrays):
        return sum(_nbytes(x) for x in arrays if _leading(x) == R) / R

    shared = sum(_nbytes(x) for x in (*state_leaves, *observation.values()) if _leading(x) != R)
    return Footprint(config, R, records, chunk, per_replica(state_leaves), per_replica(observation.values()),
                     held + shared)


def _leading(x) -> int | None:
    shape = getattr(x, "shape", ())
    return shape[0] if shape else None


def _nbytes(x) -> int:
    return int(math.prod(getattr(x, "shape", ()))) * int(getattr(getattr(x, "dtype", None), "itemsize", 8))
