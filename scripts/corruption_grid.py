"""The docs' figure of one test image under all 75 corruption settings (15 rows, clean then
severities 1-5), each image enlarged 4x: python scripts/corruption_grid.py DATA_DIR [INDEX]."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cifar_core.data import corruptions, load_cifar10

SCALE, PAD, LEFT, TOP = 4, 4, 130, 20


def grid(image: np.ndarray) -> Image.Image:
    cell = 32 * SCALE + PAD
    canvas = Image.new("RGB", (LEFT + 6 * cell, TOP + len(corruptions.NAMES) * cell), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(["clean", *(f"severity {s}" for s in corruptions.SEVERITIES)]):
        draw.text((LEFT + col * cell + 4, 4), title, fill="black")
    for row, name in enumerate(corruptions.NAMES):
        y = TOP + row * cell
        draw.text((4, y + 56), name, fill="black")
        shown = [image, *(corruptions.corrupt(image[None], name, s)[0] for s in corruptions.SEVERITIES)]
        for col, pixels in enumerate(shown):
            big = Image.fromarray(pixels).resize((32 * SCALE, 32 * SCALE), Image.NEAREST)
            canvas.paste(big, (LEFT + col * cell, y))
    return canvas


if __name__ == "__main__":
    data = load_cifar10(sys.argv[1])
    index = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    out = Path(__file__).resolve().parents[1] / "docs" / "images" / "corruptions.png"
    grid(data.x_test[index]).save(out, optimize=True)
    print(f"{out}: test image {index} ({data.class_names[data.y_test[index]]}) under 75 settings")
