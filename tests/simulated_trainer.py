"""A simulated trainer in a process of its own, for the Training now and status tests:

    python tests/simulated_trainer.py ROOT RUN_ID [EPOCHS] [SECONDS_PER_EPOCH]

It holds the run's lock and writes its progress file and history as a real trainer does
(``cifar_core.benchmark.refresh.simulate``), without TensorFlow; exit status 3 after a stop
request, as ``python -m cifar_core train``.
"""

import shlex
import sys
from pathlib import Path

from cifar_core.benchmark.refresh import simulate

if __name__ == "__main__":
    where, name, *rest = sys.argv[1:]
    epochs = int(rest[0]) if rest else 30
    epoch_s = float(rest[1]) if rest[1:] else 2.0
    command = shlex.join(["python", *sys.argv])
    sys.exit(simulate(Path(where), name, epochs, epoch_s, command=command))
