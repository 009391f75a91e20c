"""What recording your own ``fit`` costs (``cifar_core.training.tracking``): the same fit of a
``cnn_bn``-sized model with and without the recorder's callback, and the time ``finish``
takes (the test split scored, the model stored, the run's map made)."""

from __future__ import annotations

import tempfile
import time


def _fit(model_name: str, data, epochs: int, batch_size: int, callbacks: list) -> tuple:
    import keras

    from cifar_core.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model(model_name)  # takes raw uint8 pixels, as a notebook's would after Rescaling
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        validation_data=data.validation,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=callbacks,
        verbose=0,
    )
    return model, time.perf_counter() - start


def recorder_overhead(data, model_name: str = "cnn_bn", epochs: int = 5, batch_size: int = 128) -> dict:
    """Seconds for ``epochs`` epochs of ``model_name`` on ``data`` (tracking.load_data):
    plain, recorded, plain again (the spread of the two plain fits is the noise), and for
    ``finish``. A one-epoch fit first takes the tracing out of the timings."""
    from cifar_core.training import tracking

    _fit(model_name, data, 1, batch_size, [])  # warm-up: tracing, allocation
    _, plain = _fit(model_name, data, epochs, batch_size, [])
    with tempfile.TemporaryDirectory() as root:
        with tracking.Run("recorder-benchmark", data, root=root) as run:
            model, recorded = _fit(model_name, data, epochs, batch_size, [run.callback])
            start = time.perf_counter()
            run.finish(model)
            finish = time.perf_counter() - start
    _, plain_again = _fit(model_name, data, epochs, batch_size, [])
    baseline = (plain + plain_again) / 2
    return {
        "model": model_name,
        "images": len(data.y_train),
        "epochs": epochs,
        "plain_s": [plain, plain_again],
        "recorded_s": recorded,
        "overhead": recorded / baseline - 1,
        "noise": abs(plain - plain_again) / baseline,
        "finish_s": finish,
    }
