"""Speed and memory (``python -m cifar_core benchmark``, the command in commands/bench.py).

- ``train_speed``: per model, training images/s per precision through the real tf.data
  pipeline (augmentation on), the share of step time spent waiting for the next batch,
  inference ms/image at batch 1 and images/s at batch 256, peak resident memory; a
  model's step with XLA off and on, alternated (``xla_pairs``);
- ``serve_speed``: what the Classify page gets from every committed run (load, latency,
  heatmap time);
- ``time_to_accuracy``: the wall time ``fast`` runs took to reach 88% and 90% validation accuracy;
- ``recording``: what recording your own ``fit`` costs (``cifar_core.training.tracking``);
- ``refresh``: one read of the trainings under way (simulated), as ``status`` makes it;
- ``stepprofile``: a training step per layer and per part;
- ``coordination``: what a job queue and a study on PostgreSQL cost per job and trial.
"""

from cifar_core.benchmark.recording import recorder_overhead
from cifar_core.benchmark.serve_speed import inference_speed, saliency_speed
from cifar_core.benchmark.time_to_accuracy import TARGETS, time_to_accuracy
from cifar_core.benchmark.train_speed import measure, peak_memory_mb, preset, train_speed, xla_pairs

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
