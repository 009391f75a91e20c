"""The README's results block is generated from the committed runs and must match them."""

import shutil

import pytest
from conftest import ROOT

from cifar_core import artifacts
from cifar_core.analysis import readme as blocks
from cifar_core.analysis import report
from cifar_core.fileio import write_json


def test_the_readme_results_table_matches_the_committed_runs():
    readme = (ROOT / "README.md").read_text()
    runs, broken = artifacts.load_runs(ROOT / "artifacts")
    assert runs and not broken
    block = blocks.readme_block(ROOT / "artifacts")
    assert block in readme, "README results are stale: python -m cifar_core report --readme README.md"
    zoo = [r for r in runs if not artifacts.is_ladder_run(r)]
    for _, row in report.results_frame(ROOT / "artifacts").iterrows():  # a row per recipe
        assert f"| {row['label']} | {row['family']} |" in block
        assert f"| {report.accuracy_text(row)} |" in block
        members = [r for r in zoo if r.run_id in row["members"]]
        accuracies = [r.metrics["test"]["accuracy"] for r in members]
        assert row["test_acc"] == pytest.approx(sum(accuracies) / len(accuracies))
    page = (ROOT / blocks.RESULTS_PAGE).read_text()
    assert blocks.commands_block(ROOT / "artifacts") in page, "docs/results.md is stale: report --readme"
    for run in zoo:  # every zoo run says how to train it again, naming no machine's folders
        how = "python -m cifar_core " if run.manifest["command"] else report.made_by(run)
        line = next(line for line in page.splitlines() if line.startswith(f"- `{run.run_id}`: "))
        assert f"`{how}" in line and "--artifacts-dir" not in line and "/work/" not in line


def test_one_row_per_recipe_with_fast_first_among_the_models_trained_from_scratch():
    frame = report.results_frame(ROOT / "artifacts")
    assert frame["label"].is_unique  # seeds and precisions of one recipe are one row
    scratch = frame[frame["family"] == "scratch"]
    assert scratch.iloc[0]["label"] == "fast"
    fast = frame[frame["label"] == "fast"].iloc[0]
    assert fast["n"] >= 3 and "bfloat16" in fast["precisions"] and "float32" in fast["precisions"]
    assert set(frame["label"]) >= {"fast", "fast:muon8", "cnn_bn", "cnn_bn:tuned"}


def test_the_best_run_of_every_recipe_keeps_its_model_file():
    from cifar_core.analysis import seeds

    runs, _ = artifacts.load_runs(ROOT / "artifacts")
    zoo = [r for r in runs if not artifacts.is_ladder_run(r)]
    for group in seeds.group_runs(zoo):
        best = max(group.members, key=lambda r: r.metrics["test"]["accuracy"])
        assert best.has_model, f"{group.label}: its best run {best.run_id} has no model file"
        assert group.best is best  # the one the pages use


def test_the_readme_is_short_and_links_only_to_files_that_exist():
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_update_readme_rewrites_only_its_block(tmp_path, trained_run):
    root, run_id, _ = trained_run
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nintro\n\n{blocks.README_START}\nold table\n{blocks.README_END}\n\n## Next\n"
    )
    page = tmp_path / blocks.RESULTS_PAGE
    page.parent.mkdir(parents=True)
    page.write_text(f"# Results\n\n{blocks.README_START}\n{blocks.README_END}\n")
    assert blocks.update_readme(readme, root)
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\n## Next\n")
    label = artifacts.read_run(root, run_id).label
    assert "old table" not in text and f"| {label} | scratch |" in text
    assert f"`{run_id}`: `python -m cifar_core train --model baseline_cnn" in page.read_text()
    assert not blocks.update_readme(readme, root)  # idempotent

    readme.write_text("# no markers\n")
    with pytest.raises(artifacts.ArtifactError, match="no generated results block"):
        blocks.update_readme(readme, root)
    assert readme.read_text() == "# no markers\n"


def test_a_run_is_trained_again_by_its_recipe_and_names_no_machines_folder(tmp_path, trained_run):
    root, run_id, config = trained_run
    shutil.copytree(root / "runs" / run_id, tmp_path / "runs" / run_id)
    manifest = artifacts.read_run(tmp_path, run_id).manifest
    manifest["command"] = "python -m cifar_core run --models fast --artifacts-dir /x/art --data-dir d"
    manifest["environment"]["git_commit"] = "0123456789abcdef"
    write_json(tmp_path / "runs" / run_id / artifacts.MANIFEST, manifest)
    ((_, how, commit),) = blocks.reproduce_commands(tmp_path)
    assert how.startswith("python -m cifar_core train --model baseline_cnn --set batch_size=64")
    assert f"--seed {config.seed} --precision float32 --data-dir {blocks.DATA_DIR}" in how
    assert commit == "0123456" and "/x/art" not in how
    del manifest["recipe"]  # a run that records no recipe: its own command, without the folder
    write_json(tmp_path / "runs" / run_id / artifacts.MANIFEST, manifest)
    assert blocks.reproduce_commands(tmp_path) == [
        (run_id, "python -m cifar_core run --models fast --data-dir d", "0123456")
    ]


def test_the_models_table_is_the_registrys():
    page = (ROOT / blocks.MODELS_PAGE).read_text()
    block = blocks.models_block()
    assert block in page, "the models table is stale: python -m cifar_core report --readme README.md"
    assert "`fast:muon8`" in block and "`cnn_bn:tuned`" in block
    assert "64/256/256" in block  # fast's widths, as its builder and preset have them
    from cifar_core.models import list_models

    assert all(f"| `{name}` |" in block for name in list_models())
