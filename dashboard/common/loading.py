"""Runs and studies as the pages read them: through ``cifar_core.artifacts``, cached with
``st.cache_resource`` (shared, read-only) and keyed by the stat() of each run's files, so a new
or changed run shows up on the next rerun without a restart; and the empty states."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import streamlit as st

from cifar_core import artifacts
from cifar_core.artifacts import Run


def artifacts_dir() -> Path:
    return artifacts.artifacts_root()


READ_ONLY_ENV = "CIFAR_DASHBOARD_READ_ONLY"


def read_only() -> bool:
    """Started to only read (``CIFAR_DASHBOARD_READ_ONLY=1``, or ``streamlit run
    dashboard/app.py -- --read-only``): no page changes anything on disk."""
    flag = os.environ.get(READ_ONLY_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return flag or "--read-only" in sys.argv[1:]


@st.cache_resource(show_spinner="Reading runs…", max_entries=8)
def _load(root: str, signature: str) -> tuple[list[Run], dict[str, str]]:
    # cache_resource, not cache_data: cache_data would unpickle every run's arrays (test
    # predictions, thumbnails: megabytes each) on every rerun of every session. The runs
    # are shared read-only: pages never modify them.
    return artifacts.load_runs(Path(root))


def load_runs(ladders: bool = False) -> tuple[list[Run], dict[str, str]]:
    """Every readable zoo run (sorted by test accuracy; with ``ladders``, the ladders' rungs
    instead) and the reasons the unreadable ones are not."""
    root = artifacts_dir()
    # One short key: Streamlit's hasher walks a nested tuple in Python (0.2 s for 40 runs).
    key = hashlib.sha1(repr(artifacts.runs_signature(root)).encode()).hexdigest()
    runs, bad = _load(str(root), key)
    runs = [run for run in runs if artifacts.is_ladder_run(run) == ladders]
    return sorted(runs, key=lambda r: -r.metrics["test"]["accuracy"]), bad


def run_label(run: Run) -> str:
    """The run in a picker: its label, test accuracy and run id (once)."""
    accuracy = f"{run.metrics['test']['accuracy']:.2%}"
    return f"{run.label} · {accuracy}" if run.label_shared else f"{run.label} · {accuracy} · {run.run_id}"


def one_per_recipe(runs: list[Run]) -> list[Run]:
    """The best run of each recipe (``seeds.group_runs``: runs that differ only in their seed
    or precision are one recipe), in the order of ``runs``: what the pickers offer."""
    from cifar_core.analysis import seeds

    best = {id(group.best) for group in seeds.group_runs(runs)}
    return [run for run in runs if id(run) in best]


def by_label(runs: list[Run]) -> dict[str, Run]:
    """The runs keyed by their picker label (``run_label``), in order: what pickers offer."""
    return {run_label(r): r for r in runs}


def pick_run(runs: list[Run], prompt: str, key: str, index: int = 0) -> Run:
    """One run chosen in a select box labelled ``prompt`` (``key``: its widget key)."""
    labels = by_label(runs)
    return labels[st.selectbox(prompt, list(labels), index=index, key=key)]


def require_runs(minimum: int = 1) -> list[Run] | None:
    """The runs, or None after telling the user how to get (enough of) them."""
    runs, bad = load_runs()
    if bad:
        with st.expander(f"{len(bad)} unreadable run(s)", icon=":material/warning:"):
            for run_id, reason in bad.items():
                st.write(f"**{run_id}**: {reason}")
    if len(runs) >= minimum:
        return runs
    if not runs:
        st.info(
            f"No runs in `{artifacts_dir()}` yet. Train one, then reload this page:\n\n"
            "```bash\npython -m cifar_core train --model fast --data-dir /path/to/cifar10\n```\n"
            "or point the dashboard at another folder with `CIFAR_ARTIFACTS=/path/to/artifacts`."
        )
    else:
        st.info(f"This page needs at least {minimum} runs; there is {len(runs)}.")
    return None


def mtime_ns(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@st.cache_resource(show_spinner=False, max_entries=64)
def _analysis(run_path: str, name: str, mtime: int | None, _run: Run):
    read = {artifacts.EMBEDDING: artifacts.read_embedding, artifacts.DATA_FACTS: artifacts.read_data_facts}
    return read[name](_run)


def embedding_for(run: Run) -> dict | None:
    """The run's stored map of the test set (None: it has none; ArtifactError: bad file)."""
    return _analysis(str(run.path), artifacts.EMBEDDING, mtime_ns(run.path / artifacts.EMBEDDING), run)


def data_facts_for(run: Run) -> dict | None:
    """The data facts stored with the run (None: it has none; ArtifactError: bad file)."""
    return _analysis(str(run.path), artifacts.DATA_FACTS, mtime_ns(run.path / artifacts.DATA_FACTS), run)


def study_names() -> list[str]:
    """The hyper-parameter studies stored in the artifacts folder."""
    from cifar_core.artifacts import studies

    return studies.list_studies(artifacts_dir())


@st.cache_resource(show_spinner="Reading the study…", max_entries=16)
def _study(root: str, name: str, signature: tuple) -> dict:
    from cifar_core.tuning import read_study

    return read_study(Path(root), name)


def study_for(name: str) -> dict:
    """A study read by the engine (trials, importances, best), cached until its files change;
    ArtifactError for a bad one."""
    from cifar_core.artifacts import studies

    root = artifacts_dir()
    folder = studies.study_dir(root, name)
    signature = tuple(mtime_ns(folder / f) for f in (studies.STUDY_INFO, studies.JOURNAL))
    return _study(str(root), name, signature)
