"""Ladders: declared rungs, the ladder command, the study read back, and the Ladder page."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_dashboard import open_page

from cifar_core import artifacts, evaluate
from cifar_core.analysis import report
from cifar_core.cli import main
from cifar_core.config import same_config
from cifar_core.ladders import LADDERS, get_ladder, idle_reason, ladder_table, mcnemar, trim_thumbnails
from cifar_core.ladders.model import parse_rungs
from cifar_core.models import create_model


@pytest.mark.parametrize("name", list(LADDERS))
def test_every_rung_is_one_declared_change_that_builds(name):
    ladder = LADDERS[name]
    previous = None
    for i, rung in enumerate(ladder.rungs):
        config = ladder.config(i)
        for key, value in rung.changes.items():  # the change reached the config
            head, _, sub = key.partition(".")
            got = getattr(config, head)
            got = (got if isinstance(got, dict) else got.__dict__)[sub] if sub else got
            assert got == value, (ladder.run_id(i), key)
        if previous is not None and rung.changes:
            assert not same_config(previous.to_dict(), config), ladder.run_id(i)
        assert all(v is None or 0 < v < 1 for v in rung.reported)
        model = create_model(config.model, **config.model_kwargs())
        assert model.output.shape == (None, 10)
        previous = config
    assert len({ladder.run_id(i) for i in range(len(ladder.rungs))}) == len(ladder.rungs)
    assert ladder.config(0, epochs=1).epochs == 1


def test_the_write_ups_ladders_are_declared_with_their_figures():
    seed000, seed004 = get_ladder("seed000"), get_ladder("seed004")
    assert len(seed000.rungs) == 9 and len(seed004.rungs) == 4 and len(get_ladder("seed002").rungs) == 11
    assert seed000.rungs[4].reported == (0.74, 0.66, 0.71)  # dropout cost 11 points there
    assert [r.reported[2] for r in seed004.rungs] == [0.72, 0.77, 0.747, 0.78]
    base = seed000.config(0)
    assert base.early_stopping_patience == 0 and not base.restore_best and base.lr_schedule == "constant"
    assert not base.augment.enabled and base.model_args["dropout"] == 0.0
    assert seed000.config(3).early_stopping_patience == 5 and seed000.config(3).restore_best
    assert parse_rungs("1-3,5", 9) == [0, 1, 2, 4] and parse_rungs(None, 2) == [0, 1]
    with pytest.raises(ValueError, match="rungs are 1 to 4"):
        parse_rungs("3-7", 4)


def test_ladder_list_and_dry_run_train_nothing_and_bad_names_are_refused(tmp_path, capsys):
    assert main(["ladder", "list", "--artifacts-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in LADDERS) and "+ batch normalisation" in out
    assert main(["ladder", "run", "seed000", "--dry-run", "--artifacts-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("would train") == 9 and "seed000-09-adamw" in out
    assert not (tmp_path / "runs").exists()
    assert main(["ladder", "run", "seed999", "--artifacts-dir", str(tmp_path)]) == 2
    assert "unknown ladder 'seed999'" in capsys.readouterr().err
    assert main(["ladder", "run", "seed004", "--rungs", "9", "--artifacts-dir", str(tmp_path)]) == 2
    assert "rungs are 1 to 4" in capsys.readouterr().err


def test_a_ladder_trains_rung_by_rung_keeps_finished_rungs_and_reads_back_as_a_study(
    ladder_root, image_folder, capsys
):
    ladder = get_ladder("seed004")
    assert sorted(artifacts.list_runs(ladder_root)) == [ladder.run_id(0), ladder.run_id(1)]
    argv = ["ladder", "run", "seed004", "--rungs", "1", "--epochs", "1", "--val-size", "50"]
    assert main([*argv, "--data-dir", str(image_folder), "--artifacts-dir", str(ladder_root)]) == 0
    assert "seed004-01-base: finished, kept" in capsys.readouterr().out
    runs, bad = artifacts.load_runs(ladder_root)
    assert not bad and all(artifacts.is_ladder_run(r) for r in runs)
    second = artifacts.read_run(ladder_root, ladder.run_id(1))
    assert second.manifest["ladder"] == json.loads(json.dumps(ladder.record(1)))
    assert second.manifest["config"]["model_args"]["convs_per_block"] == 2
    # Stored lean: thumbnails of mistakes only, no map (the data facts stay).
    wrong = np.flatnonzero(second.predictions["y_pred"] != second.predictions["y_true"])
    assert set(second.thumbnails["index"]) <= set(wrong)
    assert not (second.path / artifacts.EMBEDDING).exists()
    assert not second.has_model and not (second.path / artifacts.MODEL).exists()  # no page needs it
    table = ladder_table(ladder, runs)
    assert list(table["rung"]) == [1, 2, 3, 4] and table["run_id"].notna().sum() == 2
    row = table.iloc[1]
    assert row["test"] == second.metrics["test"]["accuracy"]
    assert row["gain"] == pytest.approx(row["test"] - table.iloc[0]["test"])
    assert 0 < row["p_value"] <= 1 and row["reported_test"] == 0.77
    assert row["gained"] - row["lost"] == round(row["gain"] * len(second.predictions["y_true"]))
    assert pd.isna(table.iloc[0]["gain"]) and pd.isna(table.iloc[2]["test"])
    assert main(["ladder", "table", "seed004", "--artifacts-dir", str(ladder_root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 4 and lines[4].count("not trained") == 1  # rungs 3 and 4: not trained
    assert f"{row['test']:.1%}" in lines[3] and f"{row['gain'] * 100:+.1f} pts" in lines[3]
    assert report.results_frame(ladder_root).empty  # rungs are not zoo runs
    assert artifacts.runs_without_map(ladder_root) == []  # `embed --all` leaves them lean


def test_a_finished_rung_keeps_only_its_first_mistakes_pictures_as_a_rung_trained_now_would(
    ladder_root, tmp_path
):
    from cifar_core.training.record import LEAN_THUMBNAILS as LADDER_THUMBNAILS

    root = tmp_path / "artifacts"
    shutil.copytree(ladder_root, root)
    run_id = get_ladder("seed004").run_id(1)
    before = artifacts.read_run(root, run_id)
    truth, predicted = before.predictions["y_true"], before.predictions["y_pred"]
    wrong = evaluate.mistakes_first(truth, predicted, before.class_names)
    kept = before.thumbnails["index"]
    assert sorted(kept) == sorted(wrong[:LADDER_THUMBNAILS])  # as trained
    stamp = (before.path / artifacts.THUMBNAILS).stat().st_mtime_ns
    assert trim_thumbnails(root, run_id, LADDER_THUMBNAILS) == 0
    assert (before.path / artifacts.THUMBNAILS).stat().st_mtime_ns == stamp  # nothing to drop: untouched
    assert len(kept) > 2, "the tiny model should make a few mistakes"
    assert trim_thumbnails(root, run_id, 2) == len(kept) - 2
    after = artifacts.read_run(root, run_id)
    assert sorted(after.thumbnails["index"]) == sorted(wrong[:2])
    where = {int(i): k for k, i in enumerate(kept)}
    for image, i in zip(after.thumbnails["images"], after.thumbnails["index"]):
        assert np.array_equal(image, before.thumbnails["images"][where[int(i)]])  # the same JPEG bytes


def test_mcnemar_counts_the_images_each_side_gets_right_on_the_shared_ones():
    ids = [f"t{i}" for i in range(30)]
    before = pd.Series([True] * 10 + [False] * 20, index=ids)
    after = pd.Series([True] * 30, index=ids)
    gained, lost, p = mcnemar(before, after)
    assert (gained, lost) == (20, 0) and p < 1e-5
    assert mcnemar(before, before)[2] == 1.0
    with pytest.raises(ValueError, match="no test image"):
        mcnemar(before, pd.Series([True], index=["other"]))


def fake_rung(changes, y_pred, epochs_run=10, best_epoch=10, lrs=(1e-3,) * 10):
    config = {"epochs": 10, "plateau_patience": 3}
    return SimpleNamespace(
        manifest={"ladder": {"changes": changes}, "config": config},
        metrics={"epochs_run": epochs_run, "best_epoch": best_epoch},
        predictions={"y_pred": np.asarray(y_pred)},
        history=pd.DataFrame({"learning_rate": lrs[:epochs_run]}),
    )


def test_a_callback_rung_that_never_acted_says_why_it_equals_the_rung_before():
    before = fake_rung({"translate": 3}, [0, 1, 2])
    stopping = {"early_stopping_patience": 5, "restore_best": True}
    reason = idle_reason(fake_rung(stopping, [0, 1, 2]), before)
    assert "all 10 epochs ran" in reason and "best validation epoch was the last" in reason
    assert "never cut" in idle_reason(fake_rung({"lr_schedule": "plateau"}, [0, 1, 2]), before)
    # It acted (stopped early / cut the rate), changed predictions, or is not a callback: no reason.
    assert idle_reason(fake_rung(stopping, [0, 1, 2], epochs_run=7, best_epoch=2), before) is None
    assert (
        idle_reason(fake_rung({"lr_schedule": "plateau"}, [0, 1, 2], lrs=(1e-3,) * 5 + (5e-4,) * 5), before)
        is None
    )
    assert idle_reason(fake_rung(stopping, [0, 1, 1]), before) is None
    assert idle_reason(fake_rung({"model_args.dropout": 0.3}, [0, 1, 2]), before) is None


def test_the_ladder_page_shows_rungs_against_the_write_up_and_a_rungs_details(monkeypatch, ladder_root):
    at = open_page(monkeypatch, ladder_root, "ladder")
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="ladder_name").value == "seed004"
    (table,) = at.dataframe
    shown = table.value
    assert list(shown["rung"]) == [1, 2, 3, 4]
    assert shown["reported_test"].tolist() == [0.72, 0.77, 0.747, 0.78]
    assert "p=" in shown["gain_note"].iloc[1]
    assert any("Rung 1" in w.value for w in at.warning)  # one epoch is far from the write-up
    assert at.subheader[0].value.startswith("Rung 1:")
    rung = next(s for s in at.selectbox if s.label == "Rung")
    rung.set_value(1).run()
    assert not at.exception and at.subheader[0].value.startswith("Rung 2:")
    assert "Confusion matrix change from rung 1" in str(at.get("plotly_chart")[-1].proto.spec)
    at.selectbox(key="ladder_name").set_value("seed000").run()
    assert any("ladder run seed000" in i.value for i in at.info)


def test_the_ladder_page_without_runs_says_how_to_train_them(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path, "ladder")
    assert not at.exception and any("python -m cifar_core ladder run" in i.value for i in at.info)


def test_a_rung_stored_with_its_model_file_loses_it_and_still_reads(trained_run, tmp_path):
    """Rungs trained before they were stored lean: ``ladder run`` drops their model file,
    the manifest first, so the run reads as complete before and after."""
    source, run_id, _ = trained_run
    root = tmp_path / "artifacts"
    shutil.copytree(source, root)
    size = (artifacts.run_dir(root, run_id) / artifacts.MODEL).stat().st_size
    assert artifacts.read_run(root, run_id).has_model
    assert artifacts.drop_model(root, run_id) == size > 0
    run = artifacts.read_run(root, run_id)
    assert not run.has_model and run.metrics == artifacts.read_run(source, run_id).metrics
    assert artifacts.drop_model(root, run_id) == 0  # already lean
    (run.path / artifacts.MANIFEST).write_text(
        (run.path / artifacts.MANIFEST).read_text().replace('"model_file": false', '"model_file": true')
    )
    with pytest.raises(artifacts.ArtifactError, match="model.keras: missing"):
        artifacts.read_run(root, run_id)  # a run that claims a model must have one
