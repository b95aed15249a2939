"""``singular_values`` with the replica axis sharded over two CPU devices (a batched LAPACK ``gesdd`` of ≳ 48
matrices per device never returned on jaxlib 0.10.2: ``dlnlab.model.observables.singular_values`` splits the batch).

The run happens in a subprocess with a timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np, dlnlab
    assert len(jax.devices()) == 2, jax.devices()
    cfg = dlnlab.Config.from_dict({
        "teacher": {"d_in": 8, "d_out": 8, "singular_values": [3.0, 2.0, 1.0]},
        "network": {"depth": 3, "width": 16}, "init": {"gamma": 1.5},
        "dynamics": {"kind": "gd", "lr": 0.02, "t_max": 2.0},
        "record": {"n_times": 20, "observables": ["singular_values", "effective_rank", "end_to_end"]},
        "ensemble": {"replicas": 128}})
    ds = dlnlab.simulate(cfg)
    want = np.linalg.svd(ds.end_to_end.values, compute_uv=False)
    got = ds.singular_values.values
    assert np.allclose(got, want, rtol=1e-12, atol=1e-300), np.max(np.abs(got - want) / want)
    print("ok")
""")


def test_singular_values_sharded_over_two_devices():
    env_script = "import os; os.environ['JAX_NUM_CPU_DEVICES'] = '2'\n" + SCRIPT
    res = subprocess.run([sys.executable, "-c", env_script], capture_output=True, text=True, timeout=240,
                         check=False)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stdout + res.stderr
