import io

import keras
import numpy as np
import pytest
from PIL import Image

from cifar_core.data.images import open_image, to_pixels
from cifar_core.errors import ImageError, ModelLoadError
from cifar_core.serving.inference import Predictor, PredictorPool, load_model, predict_probs, translate_batch


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_exif_rotated_jpeg_is_made_upright():
    # A 40x20 image, red on the left half, stored with EXIF orientation 6 (rotate 90 CW).
    image = Image.new("RGB", (40, 20), "blue")
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    opened = open_image(_bytes(image, "JPEG", exif=exif, quality=95))
    assert opened.size == (20, 40)  # upright: portrait
    top = np.asarray(opened)[:5].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 60  # the red half is now on top


@pytest.mark.parametrize(
    "image, fmt",
    [
        (Image.new("L", (50, 50), 128), "PNG"),
        (Image.new("RGBA", (50, 50), (255, 0, 0, 0)), "PNG"),
        (Image.new("P", (50, 50), 3), "GIF"),
        (Image.new("CMYK", (50, 50), (0, 255, 0, 0)), "JPEG"),
        (Image.new("I;16", (50, 50), 40000), "PNG"),
        (Image.new("RGB", (50, 50), "green"), "WEBP"),
        (Image.new("RGB", (50, 50), "green"), "BMP"),
    ],
)
def test_modes_and_formats_become_8bit_rgb(image, fmt):
    opened = open_image(_bytes(image, fmt))
    assert opened.mode == "RGB" and opened.size == (50, 50)
    assert to_pixels(opened).shape == (32, 32, 3)


def test_transparent_pixels_become_white_and_16bit_is_rescaled():
    assert np.asarray(open_image(_bytes(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG"))).min() == 255
    assert np.asarray(open_image(_bytes(Image.new("I;16", (8, 8), 65535), "PNG"))).max() == 255


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),
    ],
)
def test_unreadable_bytes_get_a_one_line_reason(data, message):
    with pytest.raises(ImageError, match=message) as caught:
        open_image(data, name="upload.png")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("upload.png: ")


def test_decompression_bombs_and_oversized_files_are_refused_before_decoding():
    bomb = _bytes(Image.new("1", (30000, 30000)), "PNG")  # small file, 900 Mpx
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb)
    with pytest.raises(ImageError, match="larger than 1 MB"):
        open_image(b"\xff" * (1024 * 1024 + 1), max_bytes=1024 * 1024)


def test_center_crop_keeps_the_middle_of_wide_photos():
    image = Image.new("RGB", (300, 100), "black")
    image.paste((255, 255, 255), (100, 0, 200, 100))  # white square in the middle
    assert to_pixels(image).min() > 240


def test_translate_batch_shifts_with_reflection():
    x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    shifted = translate_batch(x, 1, 0)
    np.testing.assert_array_equal(shifted[0, 1:, :, 0], x[0, :3, :, 0])


def test_flip_tta_averages_the_image_and_its_mirror():
    def half(batch):  # "probability" = mean of the left half
        left = batch[:, :, :2, 0].mean(axis=(1, 2)) / 255.0
        return np.stack([left, 1 - left], axis=1)

    x = np.zeros((1, 4, 4, 3), np.uint8)
    x[:, :, :2] = 255
    np.testing.assert_allclose(predict_probs(half, x, "none"), [[1.0, 0.0]])
    np.testing.assert_allclose(predict_probs(half, x, "flip"), [[0.5, 0.5]])


def test_flip_translate_tta_is_airbenchs_six_weighted_views():
    seen = []

    def recorder(batch):
        seen.append(batch.copy())
        return np.tile([[0.25, 0.75]], (len(batch), 1))

    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(predict_probs(recorder, x, "flip_translate"), [[0.25, 0.75]] * 2, rtol=1e-6)
    expected = [x, x[:, :, ::-1]]
    for shift in (-1, 1):
        moved = translate_batch(x, shift, shift)
        expected += [moved, moved[:, :, ::-1]]
    assert len(seen) == 6
    for got, want in zip(seen, expected):
        np.testing.assert_array_equal(got, want)


def test_models_with_code_are_refused_in_safe_mode(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelLoadError, match="safe mode"):
        load_model(path)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="junk.keras"):
        load_model(tmp_path / "junk.keras")


def _tiny_model():
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_one_predictor_serves_every_batch_size_and_several_threads_with_one_trace():
    from concurrent.futures import ThreadPoolExecutor

    model = _tiny_model()
    x = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    predict = Predictor(model, batch_size=5).warm()
    serial = np.concatenate([predict(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(serial, np.asarray(model.predict_on_batch(x)), atol=1e-6)
    np.testing.assert_allclose(predict(x), serial, atol=1e-6)  # chunks of 5, 5 and 2
    with ThreadPoolExecutor(4) as threads:  # the dashboard's sessions share one Predictor
        threaded = list(threads.map(lambda i: predict(x[i % 12 : i % 12 + 1]), range(48)))
    np.testing.assert_allclose(np.concatenate(threaded), np.tile(serial, (4, 1)), atol=1e-6)
    assert predict._call.experimental_get_tracing_count() == 1


def test_the_pool_loads_models_in_the_background_and_keeps_their_errors(tmp_path):
    import os

    good, bad, missing = tmp_path / "good.keras", tmp_path / "bad.keras", tmp_path / "missing.keras"
    _tiny_model().save(good)
    bad.write_bytes(b"not a model")
    pool = PredictorPool()
    pool.preload([good, bad, missing])
    first = pool.get(good)  # waits for the loader thread
    assert isinstance(first, Predictor) and pool.get(good) is first
    with pytest.raises(ModelLoadError, match="cannot load model"):
        pool.get(bad)
    with pytest.raises(ModelLoadError, match="missing"):
        pool.get(missing)
    assert pool.progress([good, bad, missing]) == (3, 3)
    stat = good.stat()
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a retrained model
    assert pool.get(good) is not first
