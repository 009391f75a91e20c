"""scripts/peer_table.py: a peer's printed table read back, beside a run's history."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT

PEER_LOG = """\
---------------------------------------------------------------------------------
|  run     |  epoch  |  train_acc  |  val_acc  |  tta_val_acc  |  time_seconds  |
---------------------------------------------------------------------------------
|       0  |      0  |     0.6305  |   0.5288  |               |      893.1488  |
|          |      1  |     0.7485  |   0.7168  |               |     1495.2566  |
|          |   eval  |     0.7485  |   0.7168  |       0.7301  |     1535.2566  |
---------------------------------------------------------------------------------
extra test set: tta 0.9044, no tta 0.8948
test accuracy with TTA: 0.7301
"""

# airbench94 prints a train_loss column and the time as total_time_seconds; its last epoch is a partial one.
AIRBENCH94_LOG = """\
------------------------------------------------------------------------------------------------------
|  run     |  epoch  |  train_loss  |  train_acc  |  val_acc  |  tta_val_acc  |  total_time_seconds  |
------------------------------------------------------------------------------------------------------
|       0  |      0  |      1.4954  |     0.6514  |   0.6168  |               |            383.8896  |
|          |      1  |      1.1002  |     0.7812  |   0.7452  |               |            760.0000  |
|          |   eval  |      1.1002  |     0.7812  |   0.7452  |       0.7600  |            790.5000  |
------------------------------------------------------------------------------------------------------
"""


def load():
    spec = importlib.util.spec_from_file_location("peer_table", ROOT / "scripts" / "peer_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_peer_log_gives_each_epochs_own_seconds_and_the_final_figures():
    rows, final = load().peer_epochs(PEER_LOG)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["val_acc"] == 0.7168 and rows[1]["seconds"] == pytest.approx(602.1078)
    assert final["tta_val_acc"] == 0.7301 and final["tta_seconds"] == pytest.approx(40.0)
    assert (final["extra_tta"], final["extra_no_tta"]) == (0.9044, 0.8948)


def test_airbench94s_columns_are_found_by_their_names():
    rows, final = load().peer_epochs(AIRBENCH94_LOG)
    got = [(r["epoch"], r["train_acc"], r["val_acc"]) for r in rows]
    assert got == [(1, 0.6514, 0.6168), (2, 0.7812, 0.7452)]
    assert rows[1]["seconds"] == pytest.approx(760.0 - 383.8896)
    assert final["tta_val_acc"] == 0.76 and final["tta_seconds"] == pytest.approx(30.5)


def _table(tmp_path, history: str) -> subprocess.CompletedProcess:
    """peer_table.py run on PEER_LOG beside a run folder holding ``history``."""
    (tmp_path / "peer.log").write_text(PEER_LOG)
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text(history)
    script = ROOT / "scripts" / "peer_table.py"
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "peer.log"), str(run)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_table_puts_both_sides_epoch_by_epoch(tmp_path):
    result = _table(
        tmp_path,
        "epoch,accuracy,epoch_time_s,val_accuracy\n0,0.5,300.0,0.55\n1,0.7,280.0,0.72\n2,0.8,279.0,0.80\n",
    )
    lines = result.stdout.splitlines()
    assert "| 2 | 71.68% | 72.00% | 602 | 280 |" in lines
    assert "| 3 |  | 80.00% |  | 279 |" in lines
    assert "fast: 3 epochs, 859 s of training" in result.stdout
    assert "extra test set with TTA 90.44%" in result.stdout


def test_a_runs_validation_pass_is_left_out_of_its_epoch_seconds_as_the_peers_do(tmp_path):
    result = _table(
        tmp_path,
        "epoch,accuracy,epoch_time_s,val_accuracy,validation_s\n0,0.5,300.0,0.55,14.0\n1,0.7,280.0,0.72,13.5\n",
    )
    assert "| 1 | 52.88% | 55.00% | 893 | 286 |" in result.stdout.splitlines()
    assert "fast: 2 epochs, 552 s of training" in result.stdout


def test_peer_abab_reports_each_blocks_later_epochs_and_the_ratio_per_image(tmp_path):
    """scripts/peer_abab.py --report: A blocks are peer logs, B blocks fast's (unfinished) work
    folders; the first epoch of a block is start-up and stays out of the means."""
    out = tmp_path / "abab"
    for k, (a_times, b_rows) in enumerate(
        [((893.1488, 1495.2566), (700, 500)), ((500.0, 1000.0), (650, 520))], 1
    ):
        out.mkdir(exist_ok=True)
        log = PEER_LOG.replace("893.1488", f"{a_times[0]:.4f}").replace("1495.2566", f"{a_times[1]:.4f}")
        (out / f"A{k}.log").write_text(log)
        work = out / f"B{k}" / "work" / "fast-x"
        work.mkdir(parents=True)
        rows = "".join(f"{e},0.5,{s},10\n" for e, s in enumerate(b_rows))
        (work / "history.csv").write_text("epoch,val_accuracy,epoch_time_s,validation_s\n" + rows)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "peer_abab.py"), str(out), "--report"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # Peer later epochs: 602.1 and 500 s (mean 551.05); fast's: 490 and 510 (mean 500).
    assert "| A1 | airbench94_muon (PyTorch) | 893 | 602 | 602 |" in done.stdout
    assert "| B2 | fast (Keras 3, TensorFlow) | 640 | 510 | 510 |" in done.stdout
    per_epoch, per_image = 500 / 551.0539, (500 / 45_000) / (551.0539 / 44_000)
    assert f"fast/peer {per_epoch:.3f} per epoch, {per_image:.3f} per image" in done.stdout
