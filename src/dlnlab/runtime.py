"""Process-wide JAX set-up done once when dlnlab is imported (before JAX initialises its backends).

* **One CPU device per usable core** (``jax_num_cpu_devices``), so that the ensemble engines can shard the
  replica axis over every core (:func:`replica_devices`). Skipped when the user has chosen a CPU device count
  (``XLA_FLAGS=--xla_force_host_platform_device_count=…``, ``JAX_NUM_CPU_DEVICES`` or the JAX option), and
  without effect when JAX was initialised before dlnlab was imported (then there is one CPU device and the
  engines run on one core). ``JAX_NUM_CPU_DEVICES=1`` turns sharding off. Arrays that are not sharded live on
  the first device as before. Only CPU devices are used this way (:func:`shard_replicas`).
* **Unrolled Threefry on CPU.** JAX lowers the Threefry-2x32 hash behind ``jax.random`` to a rolled
  5-iteration loop on CPU; inside a per-step simulation loop each draw then costs several small loop
  iterations. dlnlab registers the unrolled lowering for CPU instead (the same 20 rounds, so the same bits: every
  random stream is unchanged), which makes a step's key derivation and draws several times cheaper. XLA may
  fuse the floating-point transforms of those bits differently, so results can differ in the last bits from
  runs without this lowering.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity set on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _one_device_per_core() -> None:
    chosen = ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
              or "JAX_NUM_CPU_DEVICES" in os.environ or jax.config.jax_num_cpu_devices >= 0)
    if chosen:
        return
    try:
        jax.config.update("jax_num_cpu_devices", usable_cores())
    except RuntimeError:  # JAX already initialised by the caller: keep its devices
        pass


def _threefry2x32_unrolled(k1, k2, x1, x2):
    """Threefry-2x32 (20 rounds, key injection every 4), as ``jax.random``'s unrolled lowering."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = lax.shift_left(x1, np.uint32(r)) | lax.shift_right_logical(x1, np.uint32(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def replica_devices(n_replicas: int) -> list:
    """The devices an ensemble of ``n_replicas`` is sharded over: every CPU device (at most one per replica);
    one device on other backends."""
    devices = jax.devices()
    if jax.default_backend() != "cpu":
        return devices[:1]
    return devices[:max(1, min(len(devices), n_replicas))]


def _compiled(fn, replica_args, devices, donate_state):
    """:func:`shard_replicas`' program for ``devices``: ``(compiled, sharding of the replica arguments; None: one
    device)``."""
    donate = (replica_args[0],) if donate_state else ()
    if len(devices) == 1:
        return jax.jit(fn, donate_argnums=donate), None
    r, whole = jax.sharding.PartitionSpec("replica"), jax.sharding.PartitionSpec()
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    specs = tuple(r if i in replica_args else whole for i in range(fn.__code__.co_argcount))
    return (jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=r, check_vma=False), donate_argnums=donate),
            jax.sharding.NamedSharding(mesh, r))


def _layout(state, max_devices, block_bytes):
    """``(R, padded size of a call, devices)`` of :func:`shard_replicas` for a state (a pytree with a leading replica
    axis)."""
    leaves = jax.tree_util.tree_leaves(state)
    R = np.shape(leaves[0])[0]
    devices = replica_devices(R)[:max_devices]
    size = R + (-R % len(devices))
    if block_bytes is not None:
        per_replica = sum(math.prod(np.shape(x)[1:]) * np.dtype(x.dtype).itemsize for x in leaves)
        size = min(size, max(1, block_bytes // max(1, per_replica)) * len(devices))
    return R, size, devices


def _copies(program, max_devices, block_bytes):
    """:func:`shard_replicas`' ``(fresh, place)`` for its ``program(devices) -> (compiled, sharding)``."""

    def plain(tree):  # whether a call takes a state like ``tree`` as it is (no padding, no blocks), and its sharding
        R, size, devices = _layout(tree, max_devices, block_bytes)
        return size == R, program(devices)[1]

    def fresh(state):
        """``state`` as a call may consume it while the caller's arrays survive: a copy placed with the sharding the
        call gives its state (several devices) or a ``jnp.copy`` (one device) where the call would donate the arrays
        themselves; ``state`` as it is where the call pads it or runs it in blocks (it then donates arrays of its own:
        the padded concatenation, the host blocks)."""
        taken, sharding = plain(state)
        if not taken:
            return state
        if sharding is None:
            return jax.tree_util.tree_map(jnp.copy, state)
        return jax.device_put(state, sharding, may_alias=False)

    def place(tree, like):
        """``tree`` (replica arguments that stay the same call after call: keys, parameters) placed once as a call
        for a state ``like`` places them, so that each call finds them there (measured: 1.1 of 8.8 ms of a
        one-step run, R = 16, w = 100, 2 CPU devices, went to placing them again); as it is where that call pads
        or runs in blocks."""
        taken, sharding = plain(like)
        return jax.device_put(tree, sharding) if taken and sharding is not None else tree

    return fresh, place


def shard_replicas(fn, replica_args: tuple[int, ...], block_bytes: int | None = None, max_devices: int | None = None,
                   donate_state: bool = False):
    """``fn`` compiled, with the leading (replica) axis of the arguments at positions ``replica_args`` and of
    every output sharded over :func:`replica_devices`; the other arguments are replicated. ``fn`` sees one
    shard and must treat replicas independently. The replica axis is padded to a multiple of the number of
    devices with copies of the last replica (trimmed from the outputs).

    ``block_bytes``: at most this many bytes of state (the first replica argument) per device in one call. A larger
    ensemble runs as consecutive calls of the same compiled program on blocks of that size (the last one padded),
    one at a time, sliced and gathered on the host. A block's state stays in cache through a whole call, and a loop
    that runs until its slowest replica is done (a Newton solve under ``vmap``) waits only for the slowest of its
    block. Blocking changes no result: ``fn`` is the same vmapped program at every block (tests/test_runtime.py,
    bitwise, for this function and for the per-mode engine). Measured on the per-mode implicit scheme (loaded 2-core
    machine, interleaved runs): no difference in cost at R = 4000 (8.4 and 15.7 µs per replica-step blocked, 9.8 and
    13.8 unblocked).

    ``max_devices``: shard over at most this many devices (``1``: one compiled program, no sharding).

    ``donate_state``: the buffers of the first replica argument (the state) are donated to the outputs, so that a call
    updates the state in place instead of allocating a second copy while the first is alive; the caller must not use
    the arrays it passed after the call (they are deleted; ``run.fresh(state)`` makes a copy to pass instead: one copy
    placed as the call places its state, so that the call does not copy it again: a one-step run of 16 replicas ×
    three 100 × 100 weights on 2 CPU devices took 7.0 ms with a copy and a resharding, 5.9 ms so). ``run.place(tree, like)``
    places arguments that stay the same call after call once, where a call for a state ``like`` reads them.

    The replica arguments are placed with the outputs' sharding before each call, so that a loop feeding the outputs
    back (a chunked run) calls the program compiled for its first call: host arrays (the initial state) would
    otherwise be another input layout and compile the program a second time (measured: 2.8 of 11.4 s of a
    ``diffusion_peak`` ensemble)."""
    programs = {}

    def program(devices):
        """``(compiled, sharding of the replica arguments; None: one device)``."""
        if len(devices) not in programs:
            programs[len(devices)] = _compiled(fn, replica_args, devices, donate_state)
        return programs[len(devices)]

    def call(args, R, size, devices):  # ``R`` replicas padded to ``size``
        pad = size - R
        compiled, sharding = program(devices)

        def placed(x):
            if not pad and (sharding is None or getattr(x, "sharding", None) == sharding):
                return x  # already where the call reads it (e.g. placed once by ``place``)
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
            return x if sharding is None else jax.device_put(x, sharding)

        args = [jax.tree_util.tree_map(placed, a) if i in replica_args else a for i, a in enumerate(args)]
        out = compiled(*args)
        return jax.tree_util.tree_map(lambda x: x[:R], out) if pad else out

    def run(*args):
        R, size, devices = _layout(args[replica_args[0]], max_devices, block_bytes)
        if size >= R:
            return call(args, R, size, devices)
        # blocks are sliced on the host and run one at a time (each waited for): two sharded programs in flight at
        # once can deadlock in their cross-device collectives (seen: an all-gather rendezvous timeout on 2 CPU
        # devices when the blocks and their slices were dispatched asynchronously)
        host = [jax.tree_util.tree_map(np.asarray, a) if i in replica_args else a for i, a in enumerate(args)]
        outs = []
        for start in range(0, R, size):
            piece = [jax.tree_util.tree_map(lambda x, s=start: x[s:s + size], a) if i in replica_args else a
                     for i, a in enumerate(host)]
            outs.append(jax.tree_util.tree_map(np.asarray, call(piece, min(size, R - start), size, devices)))
        return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)

    run.fresh, run.place = _copies(program, max_devices, block_bytes)
    return run


_one_device_per_core()
mlir.register_lowering(threefry2x32_p, mlir.lower_fun(_threefry2x32_unrolled, multiple_results=True), platform="cpu")


def package_versions() -> dict:
    """Versions of dlnlab, its main dependencies and Python (provenance of every result)."""
    import importlib.metadata as md
    import sys

    versions = {}
    for pkg in ("dlnlab", "jax", "jaxlib", "numpy", "scipy", "xarray", "zarr", "diffrax"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    versions["python"] = sys.version.split()[0]
    return versions


def code_fingerprint() -> str:
    """SHA-256 (hex, 16 digits) of dlnlab's own source files, path and content: names results kept across processes
    that are only valid for the code that computed them (``dlnlab reproduce``'s per-experiment run caches)."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
