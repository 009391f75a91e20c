"""cifar_core: train, evaluate and record the CIFAR-10 model zoo.

    python -m cifar_core list-models
    python -m cifar_core train --model fast --data-dir ../shared/data/cifar10-jpeg

Modules: data (sources, splits) -> pipeline (tf.data) -> models (the zoo) -> train ->
evaluate (metrics) -> artifacts (run folders) -> inference (saved models, images) -> cli.
"""

__version__ = "0.1.0"
