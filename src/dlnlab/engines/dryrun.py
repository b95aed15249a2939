"""``dlnlab train CONFIG --dry-run``: the size, memory and time of a run, from small probes, without running it.

* **memory** — the run's program is built for a probe ensemble of at most :data:`PROBE_REPLICAS` replicas (the
  same record grid, stacked values and widths); its initial state and first observation give the bytes per
  replica of the carried state and of one record, scaled to the run's replicas by the model of
  :mod:`.budget`; what the process holds besides (Python, JAX, the compiled probes) is its resident memory
  after the probes;
* **time** — the probe ensemble runs chunks of 1, 1, 2, 4, … steps (one record each) until a chunk takes
  :data:`PROBE_CHUNK_S` or the probes :data:`PROBE_BUDGET_S`; the time per step of the last chunk, times the
  run's steps (and its replicas over the probe's, when larger), plus the first two chunks' time (compilation:
  a chunk program may be compiled for the initial state and again for the layout of its own output state).
  Gradient flow (adaptive steps, no step count) runs the probe ensemble through the run's own record times, one
  record at a time, until :data:`PROBE_BUDGET_S`: the first two records are run twice each from the same state
  (the difference is the compilation); when the probe reaches the end of the run its time is the estimate, else
  the rest of the horizon is extrapolated at the time per unit of simulated time of the last record probed — an
  estimate, not a bound: the adaptive steps lengthen on plateaus and shorten at escapes. A flow that runs until it
  has settled (``t_max = "auto"``) has no known horizon and gets no time estimate.
  Under load the estimate is that of the load.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from dataclasses import dataclass

import jax
import numpy as np

from ..config import Config, config_to_toml
from . import budget
from ._core import chunks, total_time

#: At most this many replicas in the probes.
PROBE_REPLICAS = 64
#: The time probe stops after a chunk of at least this many seconds ...
PROBE_CHUNK_S = 0.25
#: ... or once its chunks took this long in all.
PROBE_BUDGET_S = 2.0
#: Chunks of the time probe (their steps double: at most 2^(PROBE_CHUNKS - 2) in the last).
PROBE_CHUNKS = 20


def probe_config(config: Config, replicas: int) -> Config:
    """``config`` with ``ensemble.replicas`` lowered so that it has at most ``replicas`` replicas (at least one per
    stacked combination; where the combinations alone are more, every stacked key keeps its first value)."""
    d = config.to_dict()
    combos = budget.combinations(config)
    if combos > replicas:
        for key, values in config.stacked().items():
            sec, name = key.split(".")
            d[sec][name] = values[0]
        combos = 1
    d["ensemble"]["replicas"] = max(1, min(config.ensemble.replicas, replicas // combos))
    return Config.from_dict(d)


def run_steps(config: Config) -> int | None:
    """Steps of the longest replica (``None``: gradient flow, adaptive steps)."""
    dy = config.dynamics
    if dy.kind == "flow" and not (config.model == "diagonal" and dy.dt is not None):
        return None
    unit = dy.dt if dy.dt is not None else min(np.atleast_1d(dy.lr))
    return math.ceil(total_time(config) / unit - 1e-9)


@dataclass(frozen=True)
class RunEstimate:
    """What ``--dry-run`` prints: the run's sizes, memory :class:`~.budget.Footprint` and time estimate
    (``None`` where not estimated), with the probe's replicas, compile time and time per step."""

    config: Config
    footprint: budget.Footprint
    steps: int | None
    probe_replicas: int
    time_s: float | None = None
    compile_s: float | None = None
    step_s: float | None = None
    probed_t: float | None = None

    def lines(self, available: int | None = None) -> list[str]:
        fp, c = self.footprint, self.config
        available = budget.available_memory() if available is None else available
        steps = "adaptive steps" if self.steps is None else f"{self.steps} steps"
        parts = {k: budget.human(v) for k, v in fp.parts().items()}
        out = ["resolved config:", config_to_toml(c).rstrip(), "",
               f"run: {fp.replicas} replicas × {steps} × {fp.records} records ({c.model}, {c.dynamics.kind})",
               f"memory: ~{budget.human(fp.peak)} estimated peak (process {parts['held']} + runtime "
               f"{parts['runtime']} + state {parts['state']} + records {parts['records']} + chunk buffers "
               f"{parts['chunk']}); {budget.human(available)} available"
               + ("" if fp.peak - fp.held <= available else " — the run would be refused")]
        if self.time_s is None:
            out.append('time: not estimated (t_max = "auto": the flow runs until it has settled, at no known time)')
        elif self.steps is None:
            t_end, probed = total_time(c), self.probed_t
            how = ("probed through the whole run" if probed >= t_end else
                   f"probed to t = {probed:.3g} of {t_end:.3g}, the rest extrapolated at the last record's time per "
                   "unit time; adaptive steps: an estimate, not a bound")
            out.append(f"time: ~{self.time_s:.3g} s (compile ~{self.compile_s:.2g} s + gradient flow to t = "
                       f"{t_end:.3g} at {fp.replicas} replicas; {how}; at {self.probe_replicas} replicas under the "
                       "machine's current load)")
        else:
            out.append(f"time: ~{self.time_s:.3g} s (compile ~{self.compile_s:.2g} s + {self.steps} steps × "
                       f"{self.step_s:.3g} s at {fp.replicas} replicas; probed at {self.probe_replicas} replicas "
                       "under the machine's current load)")
        return out


def estimate_run(config: Config, *, timed: bool = True) -> RunEstimate:
    """Estimate the memory (and, ``timed``, the time) of running ``config`` from probes (module docstring)."""
    from . import build

    R = budget.replica_count(config)
    probe = probe_config(config, PROBE_REPLICAS)
    program = build(probe)
    state = program.init()
    obs = program.observe(state)
    parts = program.parts if program.parts is not None else chunks(len(program.grid.t), probe.record.chunks)
    n, chunk = 1 + sum(len(p) for p in parts), max((len(p) for p in parts), default=0)
    fp = budget.measured(config, program.R, n, chunk, jax.tree_util.tree_leaves(state), obs)
    steps = run_steps(config)
    flow = timed and steps is None and config.dynamics.t_max != "auto"
    timing = flow_probe(program, state) if flow else None
    del program, state, obs
    gc.collect()
    if timed and steps is not None:
        timing = time_probe(probe, steps)
    fp = dataclasses.replace(fp, replicas=R, held=budget.resident_memory())
    est = RunEstimate(config, fp, steps, budget.replica_count(probe))
    if timing is None:
        return est
    scale = max(1.0, R / est.probe_replicas)
    if flow:
        compile_s, work_s, probed_t = timing
        return dataclasses.replace(est, compile_s=compile_s, probed_t=probed_t, time_s=compile_s + work_s * scale)
    compile_s, step_s = timing
    step_s *= scale
    return dataclasses.replace(est, compile_s=compile_s, step_s=step_s, time_s=compile_s + steps * step_s)


def flow_probe(program, state) -> tuple[float, float, float]:
    """``(compile seconds, seconds of the whole run at the probe's replicas, simulated time probed)`` of a gradient
    flow ``program`` from ``state`` (its initial state), one record at a time (module docstring)."""
    t = program.grid.t
    compile_s = work = rate = 0.0
    for i in range(1, len(t)):
        took, nxt = _timed_record(program, state, i)
        if i <= 2:  # compiled for the initial state, and again for the layout of the chunk's output state
            again, nxt = _timed_record(program, state, i)
            compile_s, took = compile_s + max(0.0, took - again), again
        state, work = nxt, work + took
        if t[i] > t[i - 1]:
            rate = took / (t[i] - t[i - 1])
        if work >= PROBE_BUDGET_S and i < len(t) - 1:
            return compile_s, work + rate * float(t[-1] - t[i]), float(t[i])
    return compile_s, work, float(t[-1])


def _timed_record(program, state, i: int):
    """``(seconds, state after record i)`` of running ``program`` from ``state`` through record ``i``."""
    t0 = time.perf_counter()
    state, _ = program.run(state, np.array([i]))
    jax.block_until_ready(state)
    return time.perf_counter() - t0, state


def time_probe(probe: Config, steps: int) -> tuple[float, float]:
    """``(compile seconds, seconds per step)`` of ``probe`` from chunks of doubling numbers of steps."""
    from . import build

    dy = probe.dynamics
    unit = dy.dt if dy.dt is not None else min(np.atleast_1d(dy.lr))
    n_steps = np.minimum(2 ** np.arange(PROBE_CHUNKS - 1), max(1, steps))
    d = probe.with_times((np.unique(n_steps) * unit).tolist()).to_dict()
    d["record"]["chunks"] = PROBE_CHUNKS
    program = build(Config.from_dict(d))
    state = program.init()
    grid = program.grid.steps if program.grid.steps.ndim == 1 else program.grid.steps.max(axis=0)
    incs = np.diff(grid)
    first, step_s, spent = 0.0, 0.0, 0.0
    for i in range(1, len(grid)):
        took, state = _timed_record(program, state, i)
        if i <= 2:  # compiled for the initial state, and again for the layout of the chunks' output state
            first += took
            continue
        step_s, spent = took / max(1, incs[i - 1]), spent + took
        if took >= PROBE_CHUNK_S or spent >= PROBE_BUDGET_S:
            break
    if not step_s:  # a run of at most two chunks: their time is all there is
        return 0.0, first / max(1, incs.sum())
    return max(0.0, first - step_s * incs[:2].sum()), step_s
