"""fast's training step through Keras' `fit` against `train_on_batch`, one process, in turn.

    python scripts/fit_step_probe.py [--rounds 1] [--steps 3]

The same compiled model (the preset at batch 2,000, random pixels as `benchmark` uses)
takes ``--steps`` steps through `fit` on three inputs (the augmented pipeline, plain
batches, one cached batch) and then through `train_on_batch`, round after round; each input
is traced once first. Prints seconds per step. Peak memory and page faults per setting:
``scripts/alloc_probe.py`` (README, *In one sitting*).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf

    from cifar_core.benchmark.train_speed import _prepared
    from cifar_core.data.pipeline import make_dataset
    from cifar_core.training import precision

    with precision.dtype_policy("float32"):
        model, batches, config, augmented = _prepared("fast:muon8", "float32")
        rng = np.random.default_rng(0)
        n = 4 * config.batch_size
        x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
        plain = make_dataset(x, y, config.batch_size, 10, shuffle=True, repeat=True)
        cached = tf.data.Dataset.from_tensors(next(iter(plain))).repeat()
        inputs = {
            "fit, augmented pipeline": augmented,
            "fit, plain batches": plain,
            "fit, one cached batch": cached,
        }
        for ds in inputs.values():  # trace each once
            model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
        model.train_on_batch(*next(batches))
        for r in range(args.rounds):
            for name, ds in inputs.items():
                start = time.perf_counter()
                model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
                print(
                    f"round {r} {name}: {(time.perf_counter() - start) / args.steps:.2f} s/step", flush=True
                )
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(*next(batches))
            print(
                f"round {r} train_on_batch: {(time.perf_counter() - start) / args.steps:.2f} s/step",
                flush=True,
            )


if __name__ == "__main__":
    main()
