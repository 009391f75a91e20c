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
    for _, row in report.results_frame(ROOT / "artifacts").iterrows():  # a row per seed group
        assert f"| {row['label']} | {row['family']} |" in block
        assert f"| {report.accuracy_text(row)} |" in block
        members = [r for r in zoo if r.run_id in row["members"]]
        accuracies = [r.metrics["test"]["accuracy"] for r in members]
        assert row["test_acc"] == pytest.approx(sum(accuracies) / len(accuracies))
    for run in zoo:  # every zoo run says how it was made
        how = "python -m cifar_core " if run.manifest["command"] else report.made_by(run)
        assert f"`{run.run_id}`: `{how}" in block


def test_update_readme_rewrites_only_its_block(tmp_path, trained_run):
    root, run_id, _ = trained_run
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Title\n\nintro\n\n{blocks.README_START}\nold table\n{blocks.README_END}\n\n## Next\n"
    )
    assert blocks.update_readme(readme, root)
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\n## Next\n")
    assert "old table" not in text and f"`{run_id}`" in text and "| baseline_cnn | scratch |" in text
    assert not blocks.update_readme(readme, root)  # idempotent

    readme.write_text("# no markers\n")
    with pytest.raises(artifacts.ArtifactError, match="no generated results block"):
        blocks.update_readme(readme, root)
    assert readme.read_text() == "# no markers\n"


def test_the_reproduce_command_leaves_out_the_machine_specific_artifacts_dir(tmp_path, trained_run):
    root, run_id, _ = trained_run
    shutil.copytree(root / "runs" / run_id, tmp_path / "runs" / run_id)
    manifest = artifacts.read_run(tmp_path, run_id).manifest
    manifest["command"] = "python -m cifar_core run --models fast --artifacts-dir /x/art --data-dir d"
    manifest["environment"]["git_commit"] = "0123456789abcdef"
    write_json(tmp_path / "runs" / run_id / artifacts.MANIFEST, manifest)
    assert blocks.reproduce_commands(tmp_path) == [
        (run_id, "python -m cifar_core run --models fast --data-dir d", "0123456")
    ]
    assert "--data-dir d` (code at 0123456)" in blocks.readme_block(tmp_path)


def test_the_readme_models_table_is_the_registrys():
    readme = (ROOT / "README.md").read_text()
    block = blocks.models_block()
    assert block in readme, "README models table is stale: python -m cifar_core report --readme README.md"
    assert "64/256/256" in block  # fast's widths, as its builder and preset have them
    from cifar_core.models import list_models

    assert all(f"| `{name}` |" in block for name in list_models())
