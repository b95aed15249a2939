"""FLOP counts of the SGD step and FLOP rates of this machine (B2): the float64 GEMM rate and the rate of the
step's matrix products each timed alone (a ceiling for the step)."""

from __future__ import annotations

import math

import numpy as np

from ._machine import timed


def gemm_rate(n: int = 1024, repeats: int = 3) -> dict:
    """float64 GEMM rate (FLOP/s) of this machine, the best of: one ``n × n`` product with JAX (XLA, which may
    use several threads) and with NumPy (BLAS), and one ``n × n`` product per JAX device at once (every core,
    as dlnlab's sharded engines use them)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

    from ..runtime import replica_devices

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    mm = jax.jit(jnp.matmul)
    devices = replica_devices(len(jax.devices()))
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    per_device = jax.jit(jax.shard_map(jnp.matmul, mesh=mesh, in_specs=PartitionSpec("replica"),
                                       out_specs=PartitionSpec("replica")))
    sa, sb = jnp.stack([ja] * len(devices)), jnp.stack([jb] * len(devices))
    runs = {"jax": (mm, (ja, jb), 1), "numpy": (lambda x, y: x @ y, (a, b), 1),
            "jax_per_device": (per_device, (sa, sb), len(devices))}
    rates, timing = {}, {}
    for name, (fn, args, count) in runs.items():
        timing[name], _ = timed(lambda fn=fn, args=args: fn(*args), repeats)
        rates[name] = count * 2.0 * n**3 / timing[name]["best_s"]
    source = max(rates, key=rates.get)
    best = timing[source]
    return {"n": n, "dtype": "float64", "jax_flops": rates["jax"], "numpy_flops": rates["numpy"],
            "jax_per_device_flops": rates["jax_per_device"], "devices": len(devices), "flops": rates[source],
            "source": source, "flops_per_cpu_s": runs[source][2] * 2.0 * n**3 / best["cpu_s"],
            "threads_used": best["cpu_s"] / best["best_s"]}


def sgd_step_products(dims, batch_size) -> list[tuple[str, str, tuple, tuple, bool]]:
    """The matrix products of one online-SGD step of one replica — sampling ``X = Z Σ^{1/2}`` and ``Y = X Mᵀ``,
    forward ``a_l = a_{l−1} W_lᵀ``, weight gradients ``δ_lᵀ a_{l−1}`` and back-propagation ``δ_l W_l`` (l ≥ 2) — as
    ``(name, einsum, lhs shape, rhs shape, shared)`` (``shared``: the right operand is the teacher's, the same for
    every replica)."""
    B, L = batch_size, len(dims) - 1
    out = [("sample X = Z Σ^½", "bi,ij->bj", (B, dims[0]), (dims[0], dims[0]), True),
           ("teacher Y = X Mᵀ", "bi,oi->bo", (B, dims[0]), (dims[-1], dims[0]), True)]
    for l in range(L):
        n_in, n_out = dims[l], dims[l + 1]
        out.append((f"forward {l + 1} (a Wᵀ)", "bi,oi->bo", (B, n_in), (n_out, n_in), False))
        out.append((f"weight gradient {l + 1} (δᵀ a)", "bo,bi->oi", (B, n_out), (B, n_in), False))
        if l > 0:
            out.append((f"back-propagation {l + 1} (δ W)", "bo,oi->bi", (B, n_out), (n_out, n_in), False))
    return out


def product_flops(spec: str, lhs, rhs) -> float:
    """FLOPs of one two-operand einsum ``spec`` (two-letter operands), 2 per multiply-add."""
    return 2.0 * math.prod((dict(zip(spec[:2], lhs)) | dict(zip(spec[3:5], rhs))).values())


def sgd_step_flops(dims, batch_size) -> float:
    """Matrix-product FLOPs of one online-SGD step of one replica (:func:`sgd_step_products`; the update and
    elementwise work are not counted)."""
    return sum(product_flops(spec, lhs, rhs) for _, spec, lhs, rhs, _ in sgd_step_products(dims, batch_size))


def product_ceiling(dims, batch_size: int, replica_steps: int, blocks, repeats: int) -> dict:
    """An upper bound for the FLOP rate of an SGD step: each of its matrix products (:func:`sgd_step_products`)
    timed *alone*, batched over a block of replicas per device (sharded as the engine is), repeated inside one
    compiled loop for ``replica_steps`` replica-steps in all; each product keeps its best rate over the block sizes
    ``blocks`` (replicas per device: small blocks keep the operands in cache). ``mix_rate`` is the step's total
    product FLOPs ÷ the sum of the per-product times at those rates — what the step would achieve if sampling,
    updates and copies cost nothing. To keep XLA from hoisting a product out of the loop its left operand takes a
    data dependence on the previous result (an add of 1e-300 × one entry: one elementwise pass, counted in the
    product's time)."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.sharding import PartitionSpec

    from ..runtime import replica_devices

    devices = replica_devices(2 ** 31)
    mesh = jax.sharding.Mesh(np.array(devices), ("replica",))
    rep = PartitionSpec("replica")
    rng = np.random.default_rng(0)
    tiny = jnp.asarray(1e-300)
    rows = []
    for name, spec, lhs, rhs, shared in sgd_step_products(dims, batch_size):
        bspec = "r" + spec.replace(",", "," if shared else ",r").replace("->", "->r")
        flops = product_flops(spec, lhs, rhs)
        best = None
        for block in blocks:
            n = block * len(devices)
            iters = max(1, math.ceil(replica_steps / n))
            x = jnp.asarray(rng.standard_normal((n, *lhs)))
            w = jnp.asarray(rng.standard_normal(rhs if shared else (n, *rhs)))

            def loop(x, w, tiny, bspec=bspec, iters=iters):
                def body(_, carry):
                    x, acc = carry
                    return x, acc + jnp.einsum(bspec, x + tiny * acc[:, None, None], w)[:, 0, 0]
                return lax.fori_loop(0, iters, body, (x, jnp.zeros_like(x[:, 0, 0])))[1]

            fn = jax.jit(jax.shard_map(loop, mesh=mesh, in_specs=(rep, PartitionSpec() if shared else rep,
                                                                    PartitionSpec()), out_specs=rep))
            t, _ = timed(lambda fn=fn, x=x, w=w: fn(x, w, tiny), repeats)
            rate = n * iters * flops / t["best_s"]
            if best is None or rate > best["rate"]:
                best = {"product": name, "lhs": list(lhs), "rhs": list(rhs), "flops": flops, "block": block, "rate": rate}
        rows.append(best)
    total = sum(r["flops"] for r in rows)
    return {"blocks": list(blocks), "devices": len(devices), "products": rows,
            "mix_rate": total / sum(r["flops"] / r["rate"] for r in rows)}

