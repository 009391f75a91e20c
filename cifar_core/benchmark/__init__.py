"""Speed and memory (``python -m cifar_core benchmark``, the command in commands/benchmark.py).

- ``training``: per model, training images/s per precision through the real tf.data
  pipeline (augmentation on), the share of step time spent waiting for the next batch,
  inference ms/image at batch 1 and images/s at batch 256, peak resident memory; a
  model's step with XLA off and on, alternated (``xla_pairs``);
- ``serving``: what the Classify page gets from every committed run (load, latency,
  heatmap time);
- ``progress``: the wall time ``fast`` runs took to reach 88% and 90% validation accuracy;
- ``recording``: what recording your own ``fit`` costs (``cifar_core.tracking``).
"""

from cifar_core.benchmark.progress import TARGETS, time_to_accuracy
from cifar_core.benchmark.recording import recorder_overhead
from cifar_core.benchmark.serving import inference_speed, saliency_speed
from cifar_core.benchmark.training import measure, peak_memory_mb, preset, train_speed, xla_pairs

__all__ = [
    "TARGETS",
    "inference_speed",
    "measure",
    "peak_memory_mb",
    "preset",
    "recorder_overhead",
    "saliency_speed",
    "time_to_accuracy",
    "train_speed",
    "xla_pairs",
]
