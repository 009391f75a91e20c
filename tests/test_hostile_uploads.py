"""Hostile and unusual uploads: a generated corpus and property-based tests of open_image.

Every file must end in either a correct prediction (10 probabilities from the upright
first frame) or one clear line naming the file, never a traceback. The Classify page and
the ``predict`` CLI both go through ``cifar_core.data.images.open_image``.
"""

import functools
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cifar_core.data.images import MAX_UPLOAD_BYTES, ImageError, open_image, to_pixels


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _photo(size=(64, 48)) -> Image.Image:
    """A small 'photo' with structure: a gradient and a bright square in the top-left."""
    w, h = size
    grad = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    grad[: h // 3, : w // 3] = [250, 30, 30]
    return Image.fromarray(grad)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    return _save(_photo().transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue", "green")]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inner.png", _save(_photo(), "PNG"))
    return buffer.getvalue()


@functools.cache  # built once: the bomb alone takes seconds to write
def corpus() -> dict[str, bytes]:
    """At least 25 bad or unusual files, all generated here."""
    png, jpeg = _save(_photo(), "PNG"), _save(_photo(), "JPEG", quality=90)
    return {
        "zero.jpg": b"",
        "text.jpg": b"hello, this is a text file pretending to be a JPEG\n" * 3,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "soi-only.jpg": b"\xff\xd8",
        "bomb.png": _save(Image.new("1", (30000, 30000)), "PNG"),
        "one-pixel.png": _save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "strip.png": _save(Image.new("RGB", (10000, 10), "white"), "PNG"),
        "grey.png": _save(_photo().convert("L"), "PNG"),
        "one-bit.png": _save(_photo().convert("1"), "PNG"),
        "palette.png": _save(_photo().convert("P"), "PNG"),
        "grey-alpha.png": _save(_photo().convert("LA"), "PNG"),
        "rgba.png": _save(_photo().convert("RGBA"), "PNG"),
        "cmyk.jpg": _save(_photo().convert("CMYK"), "JPEG"),
        "sixteen-bit.png": _save(
            Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)), "PNG"
        ),
        "exif-rotated.jpg": _exif_rotated(),
        "animated.gif": _animated_gif(),
        "photo.webp": _save(_photo(), "WEBP"),
        "rgba.webp": _save(_photo().convert("RGBA"), "WEBP"),
        "photo.bmp": _save(_photo(), "BMP"),
        "photo.tiff": _save(_photo(), "TIFF"),
        "icon.ico": _save(_photo((32, 32)), "ICO"),
        "page.png": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "vector.jpg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
        "archive.png": _zip(),
        "document.png": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
        "huge.jpg": jpeg + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(jpeg)),
        "../../x.png": png,
    }


EXPECTED_MESSAGES = {
    "zero.jpg": "empty file",
    "text.jpg": "not a readable image",
    "truncated.jpg": "broken or truncated image",
    "truncated.png": "broken or truncated image",
    "soi-only.jpg": "image",
    "bomb.png": "too large",
    "strip.png": "too elongated",
    "page.png": "not a readable image",
    "vector.jpg": "not a readable image",
    "archive.png": "not a readable image",
    "document.png": "not a readable image",
    "huge.jpg": "larger than 10 MB",
}


@pytest.fixture(scope="module")
def model():
    import keras

    from cifar_core.models import create_model

    keras.utils.set_random_seed(0)
    return create_model("baseline_cnn")


def outcome(name: str, data: bytes, model) -> tuple[str, str]:
    try:
        image = open_image(data, name=name)
    except ImageError as error:
        return "message", str(error)
    pixels = to_pixels(image)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    probs = np.asarray(model(pixels[None], training=False))[0]
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-4
    return "prediction", f"{image.size[0]}x{image.size[1]} {image.mode}"


def test_the_corpus_is_big_enough():
    assert len(corpus()) >= 25


@pytest.mark.parametrize("name", list(corpus()))
def test_each_corpus_file_gets_a_prediction_or_one_clear_line(name, model):
    kind, detail = outcome(name, corpus()[name], model)
    print(f"\n{name!r}: {kind}: {detail}")
    if name in EXPECTED_MESSAGES:
        assert kind == "message", detail
        assert EXPECTED_MESSAGES[name] in detail
        assert "\n" not in detail and "Traceback" not in detail
        assert detail.startswith(f"{name.split('/')[-1]}: ")  # names the file, never a path
    else:
        assert kind == "prediction", detail


def test_exif_rotation_and_first_gif_frame_are_what_the_model_sees():
    upright = to_pixels(_photo())
    rotated = to_pixels(open_image(_exif_rotated()))
    assert np.abs(upright.astype(int) - rotated.astype(int)).mean() < 6  # JPEG noise only
    first = to_pixels(open_image(_animated_gif()))
    assert (first[..., 0] > 200).all() and (first[..., 2] < 60).all()  # red, the first frame


def test_a_decompression_bomb_is_refused_with_bounded_memory(tmp_path):
    """In a fresh process (no TensorFlow), so its peak memory (VmHWM) is the bomb test's alone."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(corpus()["bomb.png"])  # 30000 x 30000 pixels in ~100 KB
    code = (
        "import json, sys\n"
        "from cifar_core.data.images import ImageError, open_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "hwm = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
        "before = hwm()\n"
        "try:\n    open_image(data, name='bomb.png'); result = 'decoded'\n"
        "except ImageError as e:\n    result = str(e)\n"
        "after = hwm()\n"
        "print(json.dumps({'result': result, 'peak_mb': after / 1024, 'growth_mb': (after - before) / 1024,"
        " 'file_kb': len(data) / 1024}))\n"
    )
    cmd = [sys.executable, "-c", code, str(bomb)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nbomb: {figures}")
    assert "too large" in figures["result"]
    assert figures["growth_mb"] < 20 and figures["peak_mb"] < 200  # decoding would take ~900 MB


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_escape_as_anything_but_a_clear_message(data):
    try:
        image = open_image(data, name="random.bin")
    except ImageError as error:
        assert str(error).startswith("random.bin: ") and "\n" not in str(error)
    else:
        assert image.mode == "RGB"


MODES = ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16", "I", "F"]
FORMATS = {
    "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
    "JPEG": ["RGB", "L", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["RGB", "L", "P", "1"],
    "GIF": ["P", "L"],
    "TIFF": ["RGB", "RGBA", "L", "CMYK", "I;16", "F", "I"],
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    mode_index=st.integers(0, 10),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    seed=st.integers(0, 2**16),
)
def test_random_valid_images_of_any_size_and_mode_become_model_input(fmt, mode_index, width, height, seed):
    mode = FORMATS[fmt][mode_index % len(FORMATS[fmt])]
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    image = base.convert(mode) if mode not in ("I;16", "I", "F") else base.convert("L").convert(mode)
    data = _save(image, fmt)
    try:
        opened = open_image(data, name=f"x.{fmt.lower()}")
    except ImageError as error:  # only legitimately refused shapes
        assert "too elongated" in str(error), str(error)
        assert max(width, height) > 50 * min(width, height)
        return
    assert opened.mode == "RGB" and opened.size == (width, height)
    pixels = to_pixels(opened)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
