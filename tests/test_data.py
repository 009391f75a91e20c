import io
import pickle
import tarfile
import urllib.error
import warnings

import numpy as np
import pytest
from conftest import synthetic_images, write_image_folder
from PIL import Image

from cifar_core.data import CIFAR10_CLASSES, folders, load_cifar10, split_train_val
from cifar_core.data.folders import load_labelled_folder
from cifar_core.errors import DataError


def _batch_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    rows = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # the official channel-first rows
    return pickle.dumps({b"data": rows, b"labels": [int(v) for v in y]})


def write_cifar_tarball(path, n_per_batch=20, bad_label=False):
    """A tiny cifar-10-python.tar.gz with the official layout and pickle format."""
    with tarfile.open(path, "w:gz") as archive:
        for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            x, y = synthetic_images(n_per_batch, seed=i)
            if bad_label and name == "test_batch":
                y[0] = 12
            payload = _batch_bytes(x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def test_image_folder_loads_in_cifar_class_order_and_caches(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "imgs", n_train=40, n_test=20)
    first = load_cifar10(root, cache_dir=tmp_path / "cache")
    assert first.x_train.shape == (40, 32, 32, 3) and first.x_train.dtype == np.uint8
    assert first.class_names == CIFAR10_CLASSES  # not alphabetical: CIFAR-10's own order
    expected, labels = synthetic_images(20, seed=1)
    order = np.argsort([f"{CIFAR10_CLASSES[label]}/{i:04d}" for i, label in enumerate(labels)], kind="stable")
    np.testing.assert_array_equal(first.x_test, expected[order])  # PNG is lossless
    np.testing.assert_array_equal(first.y_test, labels[order])
    assert first.test_ids[0].startswith("test/airplane/")

    def no_decoding(*args, **kwargs):
        raise AssertionError("second load must come from the cache")

    monkeypatch.setattr(folders, "_decode_all", no_decoding)
    second = load_cifar10(root, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second.x_train, first.x_train)
    assert second.checksum == first.checksum


def test_other_class_names_are_sorted_and_odd_images_converted_with_one_warning(tmp_path):
    root = write_image_folder(tmp_path / "imgs", n_train=6, n_test=3, classes=("zebra", "apple", "moon"))
    Image.new("L", (64, 48), 128).save(root / "train" / "apple" / "big_grey.png")
    Image.new("RGBA", (32, 32)).save(root / "train" / "moon" / "alpha.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_cifar10(root, cache_dir=tmp_path / "cache")
    assert loaded.class_names == ("apple", "moon", "zebra")
    messages = [str(w.message) for w in caught if "converted" in str(w.message)]
    assert messages == [f"{root.resolve()}: converted 2 images that were not 32x32 RGB"]
    assert loaded.x_train.shape == (8, 32, 32, 3)


def test_official_tarball_and_extracted_folder(tmp_path):
    tarball = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    from_tar = load_cifar10(tarball)
    assert from_tar.x_train.shape == (100, 32, 32, 3) and from_tar.x_test.shape == (20, 32, 32, 3)
    x0, y0 = synthetic_images(20, seed=0)
    np.testing.assert_array_equal(from_tar.x_train[:20], x0)  # channel order restored
    np.testing.assert_array_equal(from_tar.y_train[:20], y0)
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    for folder in (tmp_path / "extracted", tmp_path / "extracted" / "cifar-10-batches-py"):
        assert load_cifar10(folder).checksum == from_tar.checksum


def test_offline_keras_download_error_says_where_to_put_the_tarball(monkeypatch, tmp_path):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))

    def offline():
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError) as caught:
        load_cifar10(None)
    message = str(caught.value)
    assert str(tmp_path / "kh" / "datasets" / "cifar-10-batches-py-target_archive") in message
    assert "cifar-10-python.tar.gz" in message and "--data-dir" in message


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("no_test_split", "missing split folder"),
        ("empty_class", "empty class folder"),
        ("text_file", "not an image file"),
        ("corrupt_jpeg", "not a readable image"),
        ("mismatched_classes", "different class folders"),
    ],
)
def test_malformed_image_folders_name_the_path_and_write_nothing(tmp_path, breakage, expected):
    root = write_image_folder(tmp_path / "imgs", n_train=20, n_test=10)
    if breakage == "no_test_split":
        import shutil

        shutil.rmtree(root / "test")
        culprit = root / "test"
    elif breakage == "empty_class":
        culprit = root / "train" / "cat"
        for file in culprit.iterdir():
            file.unlink()
    elif breakage == "text_file":
        culprit = root / "train" / "dog" / "notes.txt"
        culprit.write_text("hello")
    elif breakage == "corrupt_jpeg":
        culprit = root / "test" / "ship" / "broken.jpg"
        culprit.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    else:
        culprit = root
        (root / "train" / "unicorn").mkdir()
        Image.new("RGB", (32, 32)).save(root / "train" / "unicorn" / "u.png")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=expected) as caught:
        load_cifar10(root, cache_dir=cache)
    assert str(culprit) in str(caught.value) or str(culprit.resolve()) in str(caught.value)
    assert not cache.exists() or not any(cache.iterdir())


def test_labels_out_of_range_and_missing_sources_are_refused(tmp_path):
    with pytest.raises(DataError, match="out of range"):
        load_cifar10(write_cifar_tarball(tmp_path / "bad.tar.gz", bad_label=True))
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    (tmp_path / "random").mkdir()
    with pytest.raises(DataError, match="expected train/<class>/"):
        load_cifar10(tmp_path / "random")
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.tar.gz"):
        load_cifar10(tmp_path / "junk.tar.gz")


def test_validation_split_is_stratified_seeded_and_disjoint():
    x, y = synthetic_images(500, seed=3)
    x = x.copy()
    x[:, 0, 0, 0] = np.arange(500) % 256  # make images distinguishable
    x[:, 0, 0, 1] = np.arange(500) // 256
    a = split_train_val(x, y, 100, seed=7)
    b = split_train_val(x, y, 100, seed=7)
    c = split_train_val(x, y, 100, seed=8)
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.array_equal(a[2], c[2])
    assert np.bincount(a[3], minlength=10).tolist() == [10] * 10  # stratified
    keys = lambda imgs: {(int(i[0, 0, 0]), int(i[0, 0, 1])) for i in imgs}  # noqa: E731
    assert not keys(a[0]) & keys(a[2]) and len(keys(a[0]) | keys(a[2])) == 500


def test_labelled_folder_for_evaluation_uses_the_models_class_order(tmp_path):
    root = write_image_folder(tmp_path / "eval", n_train=10, n_test=10)
    import shutil

    shutil.rmtree(root / "train")
    x, y, ids = load_labelled_folder(root, CIFAR10_CLASSES)
    assert len(x) == 10 and ids[0].startswith("test/")
    assert all(CIFAR10_CLASSES[label] in path for label, path in zip(y, ids))
    with pytest.raises(DataError, match="not classes of this model"):
        load_labelled_folder(root, ("cat", "dog"))
