"""One image decoder: the same file gives the same pixels in training, evaluation,
prediction and the dashboard (uploads and test images)."""

import io
import json
import shutil

import numpy as np
import pytest
from conftest import fake_model, run_values, write_image_folder
from PIL import Image

from cifar_core import artifacts
from cifar_core.data import folders, images, load_cifar10


def awkward_png() -> bytes:
    """64x48 RGBA with transparent pixels and an EXIF orientation of 6 (shown rotated 90
    degrees clockwise): left third red, a transparent middle, right third blue."""
    array = np.zeros((48, 64, 4), np.uint8)
    array[:, :21] = (255, 0, 0, 255)
    array[:, 43:] = (0, 0, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(array, "RGBA").save(buffer, "PNG", exif=exif.tobytes())
    return buffer.getvalue()


def test_the_awkward_file_is_made_upright_white_backed_and_32x32():
    pixels = images.decode_image(awkward_png())
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    # upright (rotated 90 degrees clockwise): red on top, blue at the bottom, white between
    assert pixels[:4, :, 0].mean() > 200 and pixels[:4, :, 2].mean() < 60
    assert pixels[-4:, :, 2].mean() > 200 and pixels[-4:, :, 0].mean() < 60
    assert pixels[14:18].min() > 240  # transparent -> white, not black


def test_one_file_gives_the_same_pixels_through_every_path(tmp_path, monkeypatch, trained_run):
    data = awkward_png()
    expected = images.decode_image(data)

    # training: an image folder with the file among the train and the test images
    folder = write_image_folder(tmp_path / "set", n_train=30, n_test=10)
    for split in ("train", "test"):
        (folder / split / "cat" / "zz-awkward.png").write_bytes(data)
    loaded = load_cifar10(folder, cache_dir=tmp_path / "cache")
    train_index = [i for i, (x, y) in enumerate(zip(loaded.x_train, loaded.y_train)) if y == 3][-1]
    np.testing.assert_array_equal(loaded.x_train[train_index], expected)
    test_index = list(loaded.test_ids).index("test/cat/zz-awkward.png")
    np.testing.assert_array_equal(loaded.x_test[test_index], expected)

    # evaluate: a labelled folder
    x, _, ids = folders.load_labelled_folder(folder / "test", loaded.class_names)
    np.testing.assert_array_equal(x[list(ids).index("cat/zz-awkward.png")], expected)

    # predict (the CLI): the pixels handed to the model
    from cifar_core.cli import main
    from cifar_core.serving import inference

    seen = []
    original = inference.classify
    monkeypatch.setattr(
        inference, "classify", lambda m, px, *a, **k: seen.extend(px) or original(m, px, *a, **k)
    )
    root, run_id, _ = trained_run
    file = tmp_path / "awkward.png"
    file.write_bytes(data)
    assert main(["predict", "--run", run_id, str(file), "--artifacts-dir", str(root)]) == 0
    np.testing.assert_array_equal(seen[0], expected)

    # the dashboard's upload path (Classify page): open for display, then the model's pixels
    np.testing.assert_array_equal(images.to_pixels(images.open_image(data, name="awkward.png")), expected)

    # the dashboard's test images ("Random test image", Mistakes, Compare): from the data folder
    values = run_values(loaded.class_names[:3])
    values["manifest"]["data"].update(
        kind="image_folder", root=artifacts.relative_path(folder, tmp_path / "art")
    )
    values["predictions"]["test_ids"] = np.array(["test/cat/zz-awkward.png", "a", "b", "c"])
    artifacts.write_run(tmp_path / "art", "r1", artifacts.RunContents(**values, save_model=fake_model))
    run = artifacts.read_run(tmp_path / "art", "r1")
    assert artifacts.data_folder(run) == folder.resolve()
    (shown,) = artifacts.test_images(run, [0])
    np.testing.assert_array_equal(shown, expected)


def test_test_images_fall_back_to_thumbnails_when_the_data_is_elsewhere(tmp_path):
    values = run_values()
    values["manifest"]["data"].update(kind="image_folder", root="../moved-away")
    values["thumbnails"] = {"index": np.array([2]), "images": np.full((1, 32, 32, 3), 200, np.uint8)}
    artifacts.write_run(tmp_path / "art", "r1", artifacts.RunContents(**values, save_model=fake_model))
    run = artifacts.read_run(tmp_path / "art", "r1")
    assert artifacts.data_folder(run) is None
    assert artifacts.available_test_indices(run).tolist() == [2]
    first, third = artifacts.test_images(run, [0, 2])
    assert first is None and abs(int(third.mean()) - 200) <= 2


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (7, 300)])
def test_a_non_32px_test_folder_still_gives_32px_test_images(tmp_path, size):
    """ "Random test image" used raw PIL: a folder of 64x48 files broke it."""
    folder = tmp_path / "set"
    for split in ("train", "test"):
        for name in ("a", "b"):
            (folder / split / name).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", size, (40 * i, 90, 200)).save(folder / split / name / f"{i}.png")
    values = run_values(["a", "b", "c"])
    values["manifest"]["data"].update(
        kind="image_folder", root=artifacts.relative_path(folder, tmp_path / "art")
    )
    values["predictions"]["test_ids"] = np.array(
        ["test/a/0.png", "test/a/1.png", "test/b/0.png", "test/b/2.png"]
    )
    artifacts.write_run(tmp_path / "art", "r1", artifacts.RunContents(**values, save_model=fake_model))
    run = artifacts.read_run(tmp_path / "art", "r1")
    shown = artifacts.test_images(run, [0, 1, 2, 3])
    assert all(image.shape == (32, 32, 3) for image in shown)
    assert json.loads((run.path / artifacts.MANIFEST).read_text())["data"]["root"] == "set"  # relative
    shutil.rmtree(folder)
    assert artifacts.test_images(run, [0]) == [None]  # gone, and no thumbnail of it


def test_a_preview_is_at_most_480_pixels_on_its_longer_side_and_keeps_its_shape():
    from PIL import Image

    from cifar_core.data.images import PREVIEW, preview

    photo = Image.new("RGB", (4000, 3000), (200, 10, 10))
    small = preview(photo)
    assert small.size == (PREVIEW, 360) and photo.size == (4000, 3000)
    assert small.getpixel((10, 10)) == (200, 10, 10)
    tiny = Image.new("RGB", (300, 200))
    assert preview(tiny) is tiny
