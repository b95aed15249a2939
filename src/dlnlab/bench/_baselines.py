"""The hand-written alternatives dlnlab is compared with: what a researcher would write instead.

Hand-batched NumPy SGD with closed-form gradients (stacked matmul or einsum), a per-replica PyTorch loop (B1),
batched PyTorch (closed-form or autograd gradients, eager or ``torch.compile``) and JAX written the obvious way (one
replica's jitted step in a Python loop; B8), vectorised NumPy and diffrax Euler–Maruyama of the per-mode SDE (B3)."""

from __future__ import annotations

import math

import numpy as np


def population_loss_np(weights, M, S):
    """½ tr(E Σ Eᵀ) per replica (float64), ``weights`` a list of ``(R, d_l, d_{l−1})`` arrays (NumPy, JAX or
    PyTorch on any device), ``E = W_L ⋯ W_1 − M``."""
    weights = [np.asarray(w.detach().cpu() if hasattr(w, "detach") else w, np.float64) for w in weights]
    W = weights[0]
    for Wl in weights[1:]:
        W = np.matmul(Wl, W)
    E = W - M
    return 0.5 * np.sum(np.matmul(E, S) * E, axis=(1, 2))


def numpy_batched_sgd(weights0, M, S_half, lr, batch_size, steps, record_steps=(), seed=0, product="matmul",
                      dtype="float64"):
    """Online SGD of every replica at once in NumPy with closed-form (backprop) gradients.

    ``weights0``: list of ``(R, d_l, d_{l-1})`` arrays. Each step draws ``x = Σ^{1/2} z`` for ``B`` samples per
    replica, ``y = M x``, and applies ``W_l ← W_l − η δ_lᵀ a_{l−1} / B``. ``product``: ``"matmul"`` (stacked
    ``np.matmul``, BLAS per replica) or ``"einsum"`` (``np.einsum`` without ``optimize``, which does not reach BLAS;
    the earlier baseline). ``dtype``: float64 or float32 (weights, data and draws). Returns ``(losses, weights)``:
    the population loss at ``record_steps`` (each in ``0 … steps``; shape ``(R, n_records)``) and the weights after
    ``steps`` steps."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    W = [np.array(w, dtype, copy=True) for w in weights0]
    M, S_half = np.asarray(M, dtype), np.asarray(S_half, dtype)
    R, d_in, B, L = W[0].shape[0], W[0].shape[2], batch_size, len(W)
    S = S_half @ S_half.T
    if product == "matmul":
        fwd = lambda a, w: np.matmul(a, w.transpose(0, 2, 1))
        grad = lambda d, a: np.matmul(d.transpose(0, 2, 1), a)
        back = np.matmul
    else:
        fwd = lambda a, w: np.einsum("rbj,rij->rbi", a, w)
        grad = lambda d, a: np.einsum("rbi,rbj->rij", d, a)
        back = lambda d, w: np.einsum("rbi,rij->rbj", d, w)
    rec = {int(s) for s in record_steps}
    if rec and not 0 <= min(rec) <= max(rec) <= steps:
        raise ValueError(f"record_steps must lie in 0 … steps = {steps}, got {sorted(rec)}")
    losses = []
    if 0 in rec:
        losses.append(population_loss_np(W, M, S))
    for k in range(1, int(steps) + 1):
        X = rng.standard_normal((R, B, d_in), dtype=dtype) @ S_half.T
        Y = X @ M.T
        acts = [X]
        for Wl in W:
            acts.append(fwd(acts[-1], Wl))
        delta = (acts[-1] - Y) / B
        for l in range(L - 1, -1, -1):
            g = grad(delta, acts[l])
            if l:
                delta = back(delta, W[l])
            W[l] -= lr * g
        if k in rec:
            losses.append(population_loss_np(W, M, S))
    return (np.stack(losses, axis=1) if losses else np.empty((R, 0))), W


def _torch_closed_form_step(W, X, Mt, lr, B):
    """One SGD step of stacked ``(R, d_l, d_{l−1})`` weights on the batch ``X``: forward and back-propagation as a
    ``torch.bmm`` chain with closed-form gradients; returns the new weights (functional, so that
    ``torch.compile`` can trace it)."""
    import torch

    acts = [X]
    for Wl in W:
        acts.append(torch.bmm(acts[-1], Wl.transpose(1, 2)))
    delta = (acts[-1] - X @ Mt.T) / B
    new = list(W)
    for l in range(len(W) - 1, -1, -1):
        g = torch.bmm(delta.transpose(1, 2), acts[l])
        if l:
            delta = torch.bmm(delta, W[l])
        new[l] = W[l] - lr * g
    return new


def torch_batched_sgd(weights0, M, S_half, lr, batch_size, steps, seed=0, gradients="closed_form", compiled=False,
                      dtype="float64", device="cpu"):
    """Online SGD of every replica at once in PyTorch, as a skilled user writes it: the weights as ``(R, d_l,
    d_{l−1})`` tensors, the forward pass one ``torch.bmm`` chain, float64, every intra-op thread
    (``torch.get_num_threads()``). ``gradients``: ``"closed_form"`` (back-propagation written out as ``bmm``, no
    autograd graph) or ``"autograd"`` (``torch.autograd.grad`` of the batch loss summed over replicas: each
    replica's gradient is its own). ``compiled``: the closed-form step under ``torch.compile`` (compiled on the
    first call: the caller's warm-up). ``dtype``: ``"float64"`` or ``"float32"``; ``device``: ``"cpu"`` or
    ``"cuda"``. Returns the final weights (a list of ``(R, d_l, d_{l−1})`` tensors on ``device``, its work
    finished)."""
    import torch

    dt = getattr(torch, dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    W = [torch.tensor(np.asarray(w), dtype=dt, device=device) for w in weights0]
    Mt = torch.tensor(np.asarray(M), dtype=dt, device=device)
    Sh = torch.tensor(np.asarray(S_half), dtype=dt, device=device)
    R, d_in, B = W[0].shape[0], W[0].shape[2], batch_size
    if gradients == "autograd":
        if compiled:
            raise ValueError("compiled=True is for the closed-form step")
        W = [w.requires_grad_() for w in W]
        for _ in range(int(steps)):
            X = torch.randn(R, B, d_in, generator=gen, dtype=dt, device=device) @ Sh.T
            out = X
            for Wl in W:
                out = torch.bmm(out, Wl.transpose(1, 2))
            loss = 0.5 * ((out - X @ Mt.T) ** 2).sum() / B
            grads = torch.autograd.grad(loss, W)
            with torch.no_grad():
                for Wl, g in zip(W, grads, strict=True):
                    Wl.sub_(lr * g)
        W = [w.detach() for w in W]
    else:
        step = _torch_compiled_step() if compiled else _torch_closed_form_step
        with torch.no_grad():
            for _ in range(int(steps)):
                X = torch.randn(R, B, d_in, generator=gen, dtype=dt, device=device) @ Sh.T
                W = step(W, X, Mt, lr, B)
    if device == "cuda":
        torch.cuda.synchronize()
    return W


_COMPILED = {}


def _torch_compiled_step():
    """The closed-form step under ``torch.compile`` (inductor), one compiled function per process (its graph is
    specialised to each shape on first use)."""
    import torch

    if "step" not in _COMPILED:
        _COMPILED["step"] = torch.compile(_torch_closed_form_step)
    return _COMPILED["step"]


def _jax_replica_step():
    """One replica's SGD step, ``(W, key, M, S_half, lr, batch_size) -> (W, key)``, jitted once per process (its
    compilations are cached per shape, dtype and batch size, as a user's module-level ``@jax.jit`` would be)."""
    import jax
    import jax.numpy as jnp

    if "jax_step" not in _COMPILED:
        def batch_loss(W, X, M, batch_size):
            out = X
            for Wl in W:
                out = out @ Wl.T
            return 0.5 * jnp.sum((out - X @ M.T) ** 2) / batch_size

        def step(W, key, M, S_half, lr, batch_size):
            key, sub = jax.random.split(key)
            X = jax.random.normal(sub, (batch_size, S_half.shape[0]), S_half.dtype) @ S_half.T
            g = jax.grad(batch_loss)(W, X, M, batch_size)
            return [Wl - lr * gl for Wl, gl in zip(W, g, strict=True)], key

        _COMPILED["jax_step"] = jax.jit(step, static_argnums=5)
    return _COMPILED["jax_step"]


def jax_per_replica_sgd(weights0, M, S_half, lr, batch_size, steps, seed=0, dtype="float64"):
    """Online SGD as JAX written the obvious way: one replica's step under ``jax.jit`` (``jax.grad`` of the batch
    loss ½‖f(x) − y‖² averaged over the batch), called in a Python loop over replicas and steps, on JAX's default
    device. ``dtype``: ``"float64"`` or ``"float32"``. Returns the final weights (a list of ``(R, d_l, d_{l−1})``
    JAX arrays)."""
    import jax
    import jax.numpy as jnp

    step = _jax_replica_step()
    Mj, Sh, lr_ = jnp.asarray(M, dtype), jnp.asarray(S_half, dtype), jnp.asarray(lr, dtype)
    final = []
    for r in range(weights0[0].shape[0]):
        W, key = [jnp.asarray(w[r], dtype) for w in weights0], jax.random.PRNGKey(seed + r)
        for _ in range(int(steps)):
            W, key = step(W, key, Mj, Sh, lr_, int(batch_size))
        final.append(W)
    return [jnp.stack(layer) for layer in zip(*final, strict=True)]


def torch_loop_sgd(weights0, M, S_half, lr, batch_size, steps, record_steps, replicas, seed=0):
    """Online SGD replica after replica, as a researcher writes it in PyTorch: ``nn.Linear`` layers without
    bias, ``torch.optim.SGD``, a fresh batch ``x = Σ^{1/2} z``, ``y = M x`` each step, loss ``½‖f(x) − y‖²``
    averaged over the batch; the population loss is evaluated at ``record_steps``. float64."""
    import torch
    from torch import nn

    dt = torch.float64
    Mt, Sh = torch.tensor(np.array(M), dtype=dt), torch.tensor(np.array(S_half), dtype=dt)
    S = Sh @ Sh.T
    rec = {int(s) for s in record_steps}
    out = []
    for r in range(replicas):
        torch.manual_seed(seed + r)
        layers = []
        for W in weights0:
            lin = nn.Linear(W.shape[2], W.shape[1], bias=False, dtype=dt)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(np.array(W[r]), dtype=dt))
            layers.append(lin)
        model = nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        d_in = weights0[0].shape[2]
        losses = []

        def pop_loss(model=model):
            with torch.no_grad():
                E = model[-1].weight
                for lin in reversed(list(model)[:-1]):
                    E = E @ lin.weight
                E = E - Mt
                return float(0.5 * torch.trace(E @ S @ E.T))

        if 0 in rec:
            losses.append(pop_loss())
        for k in range(1, int(steps) + 1):
            x = torch.randn(batch_size, d_in, dtype=dt) @ Sh.T
            y = x @ Mt.T
            loss = 0.5 * ((model(x) - y) ** 2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k in rec:
                losses.append(pop_loss())
        out.append(losses)
    return np.asarray(out)


def _mode_products_np(a):
    """``m = Π_l a_l`` and ``π_l = Π_{j≠l} a_j`` for ``a`` of shape ``(..., L, n)``."""
    L = a.shape[-2]
    pre, suf = [np.ones_like(a[..., 0, :])], [np.ones_like(a[..., 0, :])]
    for l in range(L - 1):
        pre.append(pre[-1] * a[..., l, :])
        suf.append(suf[-1] * a[..., L - 1 - l, :])
    suf = suf[::-1]
    return pre[-1] * a[..., L - 1, :], np.stack([pre[l] * suf[l] for l in range(L)], axis=-2)


def numpy_mode_em(a0, s, input_variance, label_noise, lr, batch_size, dt, steps, record_steps, seed=0):
    """Vectorised NumPy Euler–Maruyama of the per-layer mode SDE (every replica and mode at once):
    ``a_l ← a_l + Δt λ π_l (s − m) + sqrt(Δt η/B) π_l sqrt(D(m)) ξ``, ``D = 2λ²(m − s)² + λσ_ε²``, one ``ξ`` per
    mode and step. ``a0``: ``(R, L, n)``. Returns ``m`` at ``record_steps``: ``(R, n_records, n)``."""
    lam = input_variance
    rng = np.random.default_rng(seed)
    a = np.array(a0, np.float64, copy=True)
    R, n = a.shape[0], a.shape[-1]
    amp = math.sqrt(dt * lr / batch_size)
    rec = {int(k) for k in record_steps}
    out = []
    if 0 in rec:
        out.append(_mode_products_np(a)[0])
    for k in range(1, int(steps) + 1):
        m, pi = _mode_products_np(a)
        D = 2.0 * lam**2 * (m - s) ** 2 + lam * label_noise**2
        xi = rng.standard_normal((R, n))
        a += pi * (dt * lam * (s - m) + amp * np.sqrt(D) * xi)[:, None, :]
        if k in rec:
            out.append(_mode_products_np(a)[0])
    return np.stack(out, axis=1)


def diffrax_mode_em(a0, s, input_variance, label_noise, lr, batch_size, dt, steps, record_times, seed=0):
    """The same SDE with diffrax: ``MultiTerm(ODETerm(drift), ControlTerm(diffusion, UnsafeBrownianPath))``,
    ``Euler`` at constant step ``dt``, one Brownian motion per mode (the diffusion is a lineax operator
    ``dW ↦ sqrt(η/B) π sqrt(D) dW`` broadcast over layers), vmapped over replicas. Returns ``run()`` giving
    ``m`` at ``record_times`` (``(R, n_records, n)``)."""
    lam = input_variance
    import diffrax
    import jax
    import jax.numpy as jnp
    import lineax as lx

    a0 = jnp.asarray(a0)
    n, dtype = a0.shape[-1], a0.dtype
    s_, lam_ = jnp.asarray(s, dtype), jnp.asarray(lam, dtype)
    c = lr / batch_size

    def products(a):
        L = a.shape[0]
        pre, suf = [jnp.ones_like(a[0])], [jnp.ones_like(a[0])]
        for l in range(L - 1):
            pre.append(pre[-1] * a[l])
            suf.append(suf[-1] * a[L - 1 - l])
        suf = suf[::-1]
        return pre[-1] * a[-1], jnp.stack([pre[l] * suf[l] for l in range(L)])

    def drift(t, a, args):
        m, pi = products(a)
        return lam_ * pi * (s_ - m)

    def diffusion(t, a, args):
        m, pi = products(a)
        g = jnp.sqrt(c) * pi * jnp.sqrt(2.0 * lam_**2 * (m - s_) ** 2 + lam_ * label_noise**2)
        return lx.FunctionLinearOperator(lambda w: g * w, jax.ShapeDtypeStruct((n,), dtype))

    ts = jnp.asarray(record_times, dtype)
    t1 = float(steps * dt)

    def solve(a, key):
        bm = diffrax.UnsafeBrownianPath(shape=(n,), key=key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, t1, dt, a, saveat=diffrax.SaveAt(ts=ts),
                                  stepsize_controller=diffrax.ConstantStepSize(), max_steps=steps + 16,
                                  adjoint=diffrax.ForwardMode())
        return jnp.prod(sol.ys, axis=1)

    keys = jax.random.split(jax.random.PRNGKey(seed), a0.shape[0])
    prog = jax.jit(jax.vmap(solve))
    return lambda: prog(a0, keys)
