"""CIFAR-10-C corruptions, regenerated: the 15 corruptions of Hendrycks & Dietterich (ICLR
2019) at the five CIFAR severities of their ``make_cifar_c.py``, on uint8 32x32 images.

    corrupt(images, "fog", 3, seed=0)       # uint8 (n, 32, 32, 3), the same for the same seed
    CORRUPTIONS["noise"]                     # ("gaussian_noise", "shot_noise", "impulse_noise")

Written here with NumPy, SciPy and Pillow only (no OpenCV, scikit-image or ImageMagick): the
``imagecorruptions`` package breaks on 32x32 images and on current scikit-image. Where the
original calls ImageMagick (motion blur, and the snow layer's streaks) this module blurs
along a line with Gaussian weights on one side, as ImageMagick's ``MotionBlurImage`` does.
Each image's random draws come from its own generator, keyed by the seed, the corruption
and the image's index (not the severity: the same noise, texture or angle grows stronger):
the same images come out in any batch order.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from cifar_core.errors import ConfigError

CORRUPTIONS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
NAMES = tuple(name for group in CORRUPTIONS.values() for name in group)
SEVERITIES = (1, 2, 3, 4, 5)
# Whose published levels are not ordered by distance from the image: glass blur's and
# elastic's severity 1 moves pixels further than their severity 2 or 3 (a 1-px shuffle, a
# 2.6-px global warp), and frost's severity 4 and 5 weigh the image less and the texture more.
# Models still find their higher severities harder; pixel distance does not.
NOT_ORDERED = ("glass_blur", "frost", "elastic_transform")


def _ndimage():
    from scipy import ndimage  # when corrupting only: the pages that list corruptions need no scipy

    return ndimage


FROST = Path(__file__).with_name("frost")

# The CIFAR severities of make_cifar_c.py, one tuple per corruption, severity 1 to 5.
LEVELS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # zooms 1.00, 1.01, ... up to this
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}


def check(corruption: str, severity: int) -> None:
    if corruption not in LEVELS:
        raise ConfigError(f"unknown corruption {corruption!r}: one of {', '.join(NAMES)}")
    if severity not in SEVERITIES:
        raise ConfigError(f"severity {severity!r}: 1 to 5")


def corrupt(
    images: np.ndarray, corruption: str, severity: int, seed: int = 0, first_index: int = 0
) -> np.ndarray:
    """``images`` (uint8, n x 32 x 32 x 3) under ``corruption`` at ``severity``: uint8, same
    shape. Image i draws from a generator keyed by (seed, corruption, first_index + i)."""
    check(corruption, severity)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ConfigError(f"corruptions take uint8 images of 32x32x3, not {images.dtype} {images.shape}")
    function, level = globals()[corruption], LEVELS[corruption][severity - 1]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        # The same draws at every severity: a severity changes how strong, not where.
        rng = np.random.default_rng([seed, NAMES.index(corruption), first_index + i])
        x = function(image.astype(np.float32) / 255.0, level, rng)
        out[i] = np.clip(np.nan_to_num(x), 0, 1) * 255 + 0.5
    return out


# Noise


def gaussian_noise(x, c, rng):
    return x + rng.normal(scale=c, size=x.shape)


def shot_noise(x, c, rng):
    return rng.poisson(x * c) / c


def impulse_noise(x, c, rng):
    x = x.copy()
    hit = rng.random(x.shape) < c
    x[hit] = rng.random(int(hit.sum())) < 0.5  # salt or pepper, half each
    return x


# Blur


def _gaussian(x, sigma, truncate=4.0, mode="nearest"):
    return _ndimage().gaussian_filter(
        x, sigma=(sigma, sigma, 0) if x.ndim == 3 else sigma, truncate=truncate, mode=mode
    )


def defocus_blur(x, c, rng):
    radius, alias = c
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    disk = _ndimage().gaussian_filter(disk / disk.sum(), alias, truncate=1 / alias)  # a 3x3 anti-alias
    return np.stack([_ndimage().convolve(x[..., k], disk, mode="mirror") for k in range(3)], axis=-1)


def glass_blur(x, c, rng):
    sigma, delta, iterations = c
    x = np.floor(np.clip(_gaussian(x, sigma), 0, 1) * 255) / 255  # as uint8, as the original
    for _ in range(iterations):  # swap each pixel with a neighbour, bottom right to top left
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dy, dx = rng.integers(-delta, delta, size=2)
                other = (h + dy, w + dx)
                x[h, w], x[other] = x[other].copy(), x[h, w].copy()
    return _gaussian(x, sigma)


def _line_blur(layer, radius, sigma, angle):
    """One-sided motion blur of a 2-D layer: Gaussian weights along a line at ``angle``
    degrees (ImageMagick's MotionBlurImage, without ImageMagick)."""
    width = 2 * int(np.ceil(radius)) + 1
    steps = np.arange(width)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    weights /= weights.sum()
    rad = np.deg2rad(angle)
    rows, cols = np.indices(layer.shape)
    out = np.zeros_like(layer)
    for step, weight in zip(steps, weights):
        r = np.clip(rows + int(round(step * np.sin(rad))), 0, layer.shape[0] - 1)
        q = np.clip(cols + int(round(step * np.cos(rad))), 0, layer.shape[1] - 1)
        out += weight * layer[r, q]
    return out


def motion_blur(x, c, rng):
    angle = rng.uniform(-45, 45)
    return np.stack([_line_blur(x[..., k], c[0], c[1], angle) for k in range(3)], axis=-1)


def _clipped_zoom(x, factor):
    size = x.shape[0]
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    zoomed = _ndimage().zoom(
        x[top : top + crop, top : top + crop], (factor, factor) + (1,) * (x.ndim - 2), order=1
    )
    trim = (zoomed.shape[0] - size) // 2
    return zoomed[trim : trim + size, trim : trim + size]


def zoom_blur(x, c, rng):
    factors = np.arange(1, c, 0.01)
    return (x + sum(_clipped_zoom(x, f) for f in factors)) / (len(factors) + 1)


# Weather


def snow(x, c, rng):
    mean, scale, zoom, threshold, radius, sigma, keep = c
    layer = rng.normal(loc=mean, scale=scale, size=x.shape[:2])
    layer = _clipped_zoom(layer[..., None], zoom)[..., 0]
    layer[layer < threshold] = 0
    layer = np.round(np.clip(layer, 0, 1) * 255) / 255  # an 8-bit layer, as the original's PNG
    layer = _line_blur(layer, radius, sigma, rng.uniform(-135, -45))[..., None]
    gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    x = keep * x + (1 - keep) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


@lru_cache(maxsize=1)
def _frost_textures() -> tuple[np.ndarray, ...]:
    return tuple(
        np.asarray(Image.open(FROST / f"frost{i}.png").convert("RGB"), dtype=np.float32) / 255
        for i in range(1, 7)
    )


def frost(x, c, rng):
    texture = _frost_textures()[rng.integers(5)]  # the original draws from the first five
    top, left = rng.integers(0, texture.shape[0] - 32), rng.integers(0, texture.shape[1] - 32)
    return c[0] * x + c[1] * texture[top : top + 32, left : left + 32]


def _plasma(rng, size=32, decay=3.0):
    """A diamond-square height map in [0, 1] (the fog's cloud)."""
    grid = np.zeros((size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:size:step, half:size:step] = square / 4 + wibble * rng.uniform(
            -wibble, wibble, square.shape
        )
        centres = grid[half:size:step, half:size:step]
        corners = grid[0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:size:step, half:size:step] = across / 4 + wibble * rng.uniform(-wibble, wibble, across.shape)
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:size:step, 0:size:step] = down / 4 + wibble * rng.uniform(-wibble, wibble, down.shape)
        step, wibble = half, wibble / decay
    grid -= grid.min()
    return grid / grid.max()


def fog(x, c, rng):
    top = x.max()
    x = x + c[0] * _plasma(rng, decay=c[1])[..., None]
    return x * top / (top + c[0])


def _rgb_to_hsv(x):
    v = x.max(-1)
    spread = v - x.min(-1)
    s = np.where(v > 0, spread / np.maximum(v, 1e-12), 0)
    r, g, b = (x[..., k] for k in range(3))
    safe = np.maximum(spread, 1e-12)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    h = np.where(spread > 0, (h / 6) % 1, 0)
    return np.stack([h, s, v], -1)


def _hsv_to_rgb(x):
    h, s, v = (x[..., k] for k in range(3))
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.stack([np.choose(i, [row[k] for row in table]) for k in range(3)], -1)


def brightness(x, c, rng):
    hsv = _rgb_to_hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return _hsv_to_rgb(hsv)


# Digital


def contrast(x, c, rng):
    means = x.mean(axis=(0, 1), keepdims=True)
    return (x - means) * c + means


def elastic_transform(x, c, rng):
    alpha, sigma, shift = (32 * v for v in c)
    centre, half = 16.0, 32 // 3
    source = np.float32([[centre + half, centre + half], [centre + half, centre - half], [centre - half] * 2])
    target = source + rng.uniform(-shift, shift, size=source.shape)
    # The affine map taking target points back to source ones (the warp samples the input).
    solved = np.linalg.lstsq(np.c_[target, np.ones(3)], source, rcond=None)[0].T
    rows, cols = np.indices((32, 32), dtype=np.float64)
    points = np.stack([cols.ravel(), rows.ravel(), np.ones(1024)])
    src_cols, src_rows = (solved @ points).reshape(2, 32, 32)
    warped = np.stack(
        [
            _ndimage().map_coordinates(x[..., k], [src_rows, src_cols], order=1, mode="mirror")
            for k in range(3)
        ],
        -1,
    )
    dx, dy = (
        _ndimage().gaussian_filter(rng.uniform(-1, 1, (32, 32)), sigma, mode="reflect", truncate=3) * alpha
        if sigma
        else np.zeros((32, 32))
        for _ in range(2)
    )
    coords = [rows + dy, cols + dx]
    return np.stack(
        [_ndimage().map_coordinates(warped[..., k], coords, order=1, mode="reflect") for k in range(3)], -1
    )


def pixelate(x, c, rng):
    image = Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255 + 0.5))
    small = image.resize((int(32 * c), int(32 * c)), Image.BOX)
    return np.asarray(small.resize((32, 32), Image.BOX), dtype=np.float32) / 255


def jpeg_compression(x, c, rng):
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(x, 0, 1) * 255 + 0.5)).save(buffer, "JPEG", quality=c)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255
