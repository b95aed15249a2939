"""Record the golden datasets: ``python -m tests.golden.record`` from the repository root (see ``cases.py``)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from .cases import CASES, arrays

HERE = Path(__file__).parent


def fingerprint() -> dict:
    """What bitwise equality depends on: JAX/jaxlib/NumPy versions, the machine and its CPU's vector features."""
    import jax
    import jaxlib

    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("flags"))
        flags = " ".join(sorted(f for f in line.split(":")[1].split() if f.startswith(("avx", "fma", "sse"))))
    except (OSError, StopIteration):
        pass
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
            "machine": platform.machine(), "cpu_flags": flags}


def main():
    store = {}
    for name, fn in CASES.items():
        for var, arr in arrays(fn()).items():
            store[f"{name}/{var}"] = arr
    np.savez_compressed(HERE / "golden.npz", **store)
    (HERE / "golden.json").write_text(json.dumps(fingerprint(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(CASES)} cases, {len(store)} arrays")


if __name__ == "__main__":
    main()
