"""Where each phase of a fit gets its inputs: cached activations or pixels."""

from __future__ import annotations

import pytest

from cifar_core.config import TrainConfig, same_config
from cifar_core.fitting import cache_cuts

BACKBONE_LAYERS = 120


def _config(**overrides) -> TrainConfig:
    values = {
        "epochs": 2,
        "fine_tune_epochs": 1,
        "fine_tune_layers": 38,
        "augment": {"flip": True, "translate": 0},
        "fine_tune_augment": {"flip": True, "translate": 0},
        **overrides,
    }
    return TrainConfig.from_preset("efficientnet_lite0", **values)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, {1: 38, 2: 38}),  # flip-only in both phases: one cache below the unfrozen top
        ({"fine_tune_augment": {"flip": True, "translate": 2}}, {1: 0, 2: None}),
        ({"fine_tune_layers": BACKBONE_LAYERS}, {1: 0, 2: None}),  # whole backbone: nothing to cache
        ({"fine_tune_epochs": 0}, {1: 0}),  # no phase 2: cache the whole frozen backbone
        ({"augment": {"flip": True, "translate": 2}}, {1: None, 2: None}),
        ({"cache_features": False}, {1: None, 2: None}),
    ],
)
def test_each_phase_caches_only_what_its_augmentation_leaves_unchanged(overrides, expected):
    assert cache_cuts(_config(**overrides), True, BACKBONE_LAYERS) == expected


def test_scratch_models_always_train_on_pixels():
    assert cache_cuts(TrainConfig.from_preset("baseline_cnn"), False) == {1: None}


def test_phase_two_has_its_own_augmentation_and_batch_size():
    config = _config(fine_tune_augment={"flip": True, "translate": 4}, fine_tune_batch_size=48)
    assert config.phase(1) is config
    two = config.phase(2)
    assert (two.augment.translate, two.batch_size) == (4, 48)
    assert (config.augment.translate, config.batch_size) == (0, config.batch_size)
    plain = TrainConfig.from_preset("efficientnet_lite0_frozen")
    assert plain.phase(2).augment == plain.augment and plain.phase(2).batch_size == plain.batch_size


def test_run_ids_hash_only_what_differs_from_the_defaults():
    config = TrainConfig(model="baseline_cnn", epochs=3)
    assert config.non_default() == {"model": "baseline_cnn", "epochs": 3}
    saved = config.to_dict()
    del saved["fine_tune_augment"]  # written before the field existed
    assert same_config(saved, config)
    assert not same_config({**saved, "epochs": 4}, config)
    assert not same_config({**saved, "no_such_field": 1}, config)
    assert TrainConfig(model="baseline_cnn", epochs=3).fingerprint() == config.fingerprint()
    assert TrainConfig(model="baseline_cnn", epochs=4).fingerprint() != config.fingerprint()
