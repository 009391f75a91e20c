"""fast's `fit` steps in this process: seconds, CPU user and system time, page faults a step.

    python scripts/alloc_probe.py [STEPS]
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python scripts/alloc_probe.py      # THP for malloc
    TF_CPU_ALLOCATOR_USE_BFC=1 python scripts/alloc_probe.py                 # TF's caching allocator

One process per setting (the variables are read at start-up); run them in turn to compare.
"""

from __future__ import annotations

import os
import resource
import sys
import time


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    from cifar_core.benchmark.train_speed import _prepared
    from cifar_core.training import precision

    with precision.dtype_policy("float32"):
        model, _, _, ds = _prepared("fast:muon8", "float32")
        model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
        t0, c0, r0 = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
        model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        t1, c1, r1 = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{(t1 - t0) / steps:.2f} s/step, user {(c1.user - c0.user) / steps:.1f} s, "
        f"system {(c1.system - c0.system) / steps:.2f} s, "
        f"minor faults {(r1.ru_minflt - r0.ru_minflt) / steps:,.0f} a step, "
        f"peak RSS {r1.ru_maxrss / 1024:,.0f} MB"
    )


if __name__ == "__main__":
    main()
