"""The write-ups' ladders, declared once: each rung's change and the figures its write-up
reported (../shared/seeds/, the file and table named in ``source``).

A rung's ``changes`` are ``--set`` settings (config.apply_setting) applied on top of the
rung before it; the base settings turn the model's preset into the write-up's starting
point. Figures are fractions; None where the write-up gives none (seed 002 reports train
and validation accuracy only).
"""

from __future__ import annotations

from cifar_core.ladders.model import Ladder, Rung

# What every ladder starts from: a plain Adam run, fixed epochs, no augmentation, no early
# stopping (and the last epoch's weights, not the best validation epoch's: a write-up's
# rung before "early stopping" had none of that).
PLAIN = {
    "batch_size": 128,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "augment": {"flip": False, "translate": 0, "rotation": 0.0, "zoom": 0.0},
    "early_stopping_patience": 0,
    "restore_best": False,
    "tta": "none",
}
EARLY_STOPPING = {"early_stopping_patience": 5, "restore_best": True}
SHIFTS_AND_FLIPS = {"augment.flip": True, "augment.translate": 3}

SEED000 = Ladder(
    name="seed000",
    title="Seed 000: from a plain CNN to 90% (BN, augmentation, early stopping, dropout, GAP, depth, "
    "ReduceLROnPlateau, AdamW)",
    source="000_a0be9c6494c9968b.txt, the table 'Model / Train Acc / Val Acc / Test Acc' grown slide by "
    "slide from 'Base Model' to 'Model with AdamW'",
    model="baseline_cnn",
    base={**PLAIN, "epochs": 10, "model_args": {"dropout": 0.0}},
    # Measured (benchmark --models baseline_cnn --set model_args...: 1,700 / 978 / 236 train
    # img/s for rung 1 / rungs 2-6 / rungs 7-9 on the 2-vCPU Intel reference): 10 epochs
    # a rung is ~2.3 h for the ladder, three quarters of it in the three 4-block rungs.
    epochs_note="10 epochs per rung (early stopping may end a rung sooner; the write-up trained "
    "longer: its base peaked at epoch 17)",
    rungs=(
        Rung("base", "Base: 3 convs 32-64-128, Flatten, Dense 128, Adam", {}, (0.93, 0.73, 0.73)),
        Rung("batch-norm", "+ batch normalisation", {"model_args.batch_norm": True}, (0.98, 0.76, 0.75)),
        Rung(
            "augmentation", "+ data augmentation (flips, 3 px shifts)", SHIFTS_AND_FLIPS, (0.83, 0.78, 0.78)
        ),
        Rung(
            "early-stopping",
            "+ early stopping (patience 5, best weights)",
            EARLY_STOPPING,
            (0.87, 0.79, 0.82),
        ),
        Rung("dropout", "+ dropout 0.3", {"model_args.dropout": 0.3}, (0.74, 0.66, 0.71)),
        Rung("gap", "+ global average pooling (for Flatten)", {"model_args.head": "gap"}, (0.73, 0.63, 0.72)),
        Rung(
            "deeper",
            "deeper: 4 blocks 32-64-128-256 x 2 convs, Dense 256",
            {
                "model_args.widths": [32, 64, 128, 256],
                "model_args.convs_per_block": 2,
                "model_args.padding": "same",
                "model_args.pool_last": True,
                "model_args.dense": 256,
            },
            (0.90, 0.86, 0.86),
        ),
        Rung("plateau", "+ ReduceLROnPlateau", {"lr_schedule": "plateau"}, (0.92, 0.88, 0.88)),
        Rung(
            "adamw",
            "+ AdamW (decoupled weight decay 0.004)",
            {"optimizer": "adamw", "weight_decay": 0.004},
            (0.95, 0.89, 0.90),
        ),
    ),
)

SEED004 = Ladder(
    name="seed004",
    title="Seed 004: a small CNN, 72% -> 78% (depth, dropout and early stopping, augmentation)",
    source="004_2ee6159503b53a3b.txt, 'Improving the model': Base CNN ~72%, More layers ~77%, "
    "Dropout & Earlystopping ~74.7%, Data Augmentation ~78% (test accuracy)",
    model="baseline_cnn",
    base={**PLAIN, "epochs": 15},
    # Measured as seed000's: 1,700 train img/s for rung 1, 477 for rungs 2-4: ~1.4 h in all.
    epochs_note="15 epochs per rung (early stopping may end a rung sooner)",
    rungs=(
        Rung("base", "Base CNN: 3 convs 32-64-128, Flatten, Dense 128, dropout 0.5", {}, (None, None, 0.72)),
        Rung(
            "more-layers",
            "more layers: 2 convs per block, 'same' padding",
            {
                "model_args.convs_per_block": 2,
                "model_args.padding": "same",
                "model_args.pool_last": True,
            },
            (None, None, 0.77),
        ),
        Rung(
            "dropout-early-stopping",
            "+ dropout 0.25 after each block, early stopping",
            {"model_args.block_dropout": 0.25, **EARLY_STOPPING},
            (None, None, 0.747),
        ),
        Rung(
            "augmentation", "+ data augmentation (flips, 3 px shifts)", SHIFTS_AND_FLIPS, (None, None, 0.78)
        ),
    ),
)

SEED002 = Ladder(
    name="seed002",
    title="Seed 002: eleven CNN iterations up to 'MFM-24' (val 86.8%)",
    source="002_33258572e03b1588.txt, Table 1 (accuracy and validation accuracy of models 1-11) and "
    "the annex table of their changes",
    model="baseline_cnn",
    base={
        **PLAIN,
        "epochs": 15,
        "optimizer": "sgd",
        "learning_rate": 0.01,  # Keras' SGD default; the write-up names no rate
        "momentum": 0.0,
        "nesterov": False,
        "batch_size": 512,
        "model_args": {"widths": [32], "padding": "same", "dense": 100, "dropout": 0.0},
    },
    # Its 64-256 double-conv rungs train at about a fifth of seed000's small-net speed:
    # eleven rungs of 15 epochs are over 9 hours here (declared and runnable, not committed).
    epochs_note="15 epochs per rung (the write-up trained 60)",
    rungs=(
        Rung("baseline", "one conv layer (32), Flatten, Dense 100, SGD", {}, (0.6239, 0.5747, None)),
        Rung(
            "bn-dropout",
            "+ BatchNormalization and dropout 0.25",
            {"model_args.batch_norm": True, "model_args.dropout": 0.25},
            (0.8395, 0.6883, None),
        ),
        Rung(
            "deeper",
            "deeper, 2 convs per block 64 and 128",
            {"model_args.widths": [64, 128], "model_args.convs_per_block": 2, "model_args.pool_last": True},
            (0.8583, 0.7274, None),
        ),
        Rung(
            "gap",
            "global average pooling instead of Flatten",
            {"model_args.head": "gap"},
            (0.7159, 0.6550, None),
        ),
        Rung(
            "adam",
            "Adam (learning rate 0.01)",
            {"optimizer": "adam", "learning_rate": 0.01},
            (0.9783, 0.8016, None),
        ),
        Rung("early-stopping", "+ early stopping", EARLY_STOPPING, (0.9241, 0.7781, None)),
        Rung(
            "256-blocks",
            "two more blocks of 256 filters",
            {"model_args.widths": [64, 128, 256, 256]},
            (0.9447, 0.8292, None),
        ),
        Rung("batch-128", "batch 512 -> 128", {"batch_size": 128}, (0.9514, 0.8469, None)),
        Rung(
            "augmentation",
            "+ augmentation (3 px shifts, rotations up to 18 degrees)",
            {"augment.translate": 3, "augment.rotation": 0.05},
            (0.8885, 0.8415, None),
        ),
        Rung(
            "lr-0.001",
            "Adam learning rate 0.001 ('MFM-24')",
            {"learning_rate": 0.001},
            (0.9078, 0.8678, None),
        ),
        Rung("less-dropout", "dropout 0.25 -> 0.1", {"model_args.dropout": 0.1}, (0.8127, 0.7535, None)),
    ),
)

LADDERS: dict[str, Ladder] = {ladder.name: ladder for ladder in (SEED000, SEED004, SEED002)}
