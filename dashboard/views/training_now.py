"""Training now: every training under the artifacts root, re-read every few seconds.

The engine (``cifar_core.training.status``) reads what the trainers write into their work folders;
this page draws it. A stop is a request file the trainer checks after each epoch.
"""

import plotly.graph_objects as go
import streamlit as st
from common import admin, loading

from cifar_core.errors import ArtifactError, CifarError
from cifar_core.training import status
from cifar_core.training.progress import format_duration

REFRESH_S = 3
SPLITS = (("train", "", "#1f77b4"), ("validation", "val_", "#ff7f0e"))

st.title("Training now")
root = loading.artifacts_dir()
read_only = not admin.may_change()
st.caption(
    f"Every training under `{root}/work`: `train`, `run`, ladder rungs, tuning trials and fits "
    f"recorded from a notebook. Re-read every {REFRESH_S} s. " + admin.why_not()
)


def curves_figure(training: status.Training, reference) -> go.Figure:
    """Accuracy and loss per epoch so far, beside the best finished run of the model (dashed).
    Built as one dict (no make_subplots): this page redraws it every few seconds."""
    traces = []
    sources = [(training.history, "solid", "now")]
    if reference is not None:
        sources.append((reference.history, "dash", "best finished"))
    for axis, metric in (("", "accuracy"), ("2", "loss")):
        for split, prefix, colour in SPLITS:
            for history, dash, name in sources:
                column = f"{prefix}{metric}"
                if column not in history or not len(history):
                    continue
                traces.append(
                    {
                        "type": "scatter",
                        "x": (history["epoch"] + 1).tolist(),
                        "y": history[column].tolist(),
                        "mode": "lines+markers" if dash == "solid" else "lines",
                        "line": {"dash": dash, "color": colour},
                        "opacity": 1.0 if dash == "solid" else 0.5,
                        "name": f"{split} ({name})",
                        "legendgroup": f"{split} {name}",
                        "showlegend": axis == "",
                        "xaxis": f"x{axis}",
                        "yaxis": f"y{axis}",
                    }
                )
    epochs = [0.5, max(training.epochs or 1, len(training.history), 1) + 0.5]
    layout = {
        "height": 320,
        "margin": {"t": 40, "b": 10, "l": 10, "r": 10},
        "xaxis": {"domain": [0, 0.46], "range": epochs, "title": {"text": "epoch"}},
        "xaxis2": {"domain": [0.54, 1], "range": epochs, "title": {"text": "epoch"}, "anchor": "y2"},
        "yaxis": {"title": {"text": "accuracy"}},
        "yaxis2": {"title": {"text": "loss"}, "anchor": "x2"},
    }
    return go.Figure({"data": traces, "layout": layout})


def _ask(key: str, value: bool) -> None:
    st.session_state[key] = value


def _stop(training: status.Training, asking: str) -> None:
    st.session_state[asking] = False
    try:
        status.stop(root, training.key)  # the engine checks it is a running training of this root
    except ArtifactError as error:  # finished or gone meanwhile
        st.session_state["training_now_stop_error"] = str(error)


def stop_controls(training: status.Training) -> None:
    """Stop… then a confirmation (button callbacks, so an auto-refresh in between keeps it)."""
    asking = f"confirm_stop_{training.key}"
    if training.stop_requested:
        st.info(f"Stop requested: it stops after epoch {training.next_epoch}. Resume with:")
        st.code(training.resume_hint, language="bash")
        return
    if training.stage == "recording":
        st.caption("Training is over: scoring the test split and writing the run.")
        return
    if not st.session_state.get(asking):
        st.button(
            "Stop…",
            key=f"stop_{training.key}",
            help="stop at the end of the current epoch (it stays resumable)",
            on_click=_ask,
            args=(asking, True),
        )
        return
    resumes = "it can be resumed" if training.kind != "recorded" else "your notebook carries on"
    st.warning(
        f"Stop **{training.run}** at the end of epoch {training.next_epoch}? Its checkpoints stay: {resumes}."
    )
    yes, no = st.columns(2)
    yes.button(
        "Yes, stop it", key=f"yes_{training.key}", type="primary", on_click=_stop, args=(training, asking)
    )
    no.button("Cancel", key=f"no_{training.key}", on_click=_ask, args=(asking, False))


def where(training: status.Training) -> str:
    parts = []
    if training.phases and training.phases > 1:
        parts.append(f"phase {training.phase}/{training.phases}")
    parts.append(f"epoch {training.next_epoch}/{training.epochs or '?'}")
    if training.steps:
        parts.append(f"step {training.step}/{training.steps}")
    if training.images_per_s:
        parts.append(f"{training.images_per_s:,.0f} images/s")
    parts.append(f"elapsed {format_duration(training.train_s)}")
    parts.append(f"ETA {format_duration(training.eta_s)}")
    if training.batch:
        parts.append(f"{status.batch_text(training)}, all done in {format_duration(training.batch_eta_s)}")
    return " · ".join(parts)


def detail(training: status.Training, runs) -> None:
    """One training: where it is, its curves against the best finished run, Stop or resume."""
    st.markdown(f"**{training.run}** · {training.model} · {training.kind} · *{training.label}*")
    if training.state == status.RUNNING:
        total = max(training.epochs or 1, 1)
        done = training.epoch + (training.step / training.steps if training.steps else 0.0)
        st.progress(min(done / total, 1.0), text=where(training))
        usage = [f"process {training.pid} on {training.host or '?'}"]
        if training.cpu_percent is not None:
            usage.append(f"CPU {training.cpu_percent:.0f}%, memory {training.memory_mb:,.0f} MB")
        st.caption(" · ".join(usage))
    elif training.state == status.FAILED:
        st.error(f"Failed: {training.error}")
    if training.state != status.RUNNING:
        if training.resumable:
            st.markdown(f"Stopped after epoch {training.epoch}. Resume with:")
            st.code(training.resume_hint, language="bash")
        else:
            st.caption(f"Nothing to resume: {training.resume_hint}.")
    if training.state == status.RUNNING and not read_only:
        stop_controls(training)
    if len(training.history):
        reference = status.reference_run(runs, training.model)
        st.plotly_chart(curves_figure(training, reference), key="training_now_curves", width="stretch")
        if reference is not None:
            st.caption(
                f"Solid: this training. Dashed: {reference.label} ({reference.run_id}), "
                "the best finished run of the model."
            )
    else:
        st.caption("Curves appear after the first epoch.")


def _cancel(url: str, run_id: str) -> None:
    from cifar_core.cluster import queue

    try:
        state, _ = queue.cancel(url, run_id)
    except CifarError as error:  # the server went away, or the job ended meanwhile
        st.session_state["training_now_stop_error"] = str(error)
        return
    if state == "running":  # a worker took it a moment ago: ask the run to stop instead
        st.session_state["training_now_stop_error"] = f"{run_id} started meanwhile: stop it below"


def queue_jobs(url: str) -> None:
    """The queue's jobs (``status --queue``): state, attempts, worker; Cancel for a queued one."""
    from cifar_core import database
    from cifar_core.cluster import queue

    try:
        frame = queue.jobs_frame(url)
    except CifarError as error:
        st.warning(f"Job queue: {error}")
        return
    st.subheader(f"Job queue · {database.where(url)}")
    if frame.empty:
        st.caption(
            "No jobs: `python -m cifar_core run --models cnn_bn --seeds 0,1,2 --queue URL` queues some."
        )
        return
    counts = frame["state"].value_counts()
    st.caption(", ".join(f"{n} {state}" for state, n in counts.items()))
    shown = ["job", "run_id", "label", "state", "attempts", "worker", "host", "outcome"]
    st.dataframe(frame[shown], hide_index=True, width="stretch")
    waiting = frame[frame["state"] == "queued"]["run_id"].tolist()
    if waiting and not read_only:
        pick, button = st.columns([3, 1], vertical_alignment="bottom")
        chosen = pick.selectbox("Queued job", waiting, key="training_now_queued")
        button.button("Cancel job", key="training_now_cancel", on_click=_cancel, args=(url, chosen))


@st.fragment(run_every=REFRESH_S)
def live() -> None:
    found, warnings = status.trainings(root)
    for warning in warnings + [st.session_state.pop("training_now_stop_error", None)]:
        if warning:
            st.warning(warning)
    seen = st.session_state.setdefault("training_now_seen", set())
    runs, _ = loading.load_runs()
    finished = sorted(seen - {t.run for t in found} & {r.run_id for r in runs})
    for run_id in finished:
        st.success(f"{run_id} finished: it is on the Leaderboard now.")
    st.session_state["training_now_seen"] = {t.run for t in found} | set(finished)
    if admin.queue_url():
        queue_jobs(admin.queue_url())
    if not found:
        st.info(
            "Nothing is training. Start a run and it appears here within seconds: "
            "`python -m cifar_core train --model cnn_bn --data-dir ../shared/data/cifar10-jpeg`."
        )
        return
    st.dataframe(status.status_frame(found), hide_index=True, width="stretch")
    names = {f"{t.run} ({t.label})": t for t in sorted(found, key=lambda t: t.state != status.RUNNING)}
    chosen = (
        st.selectbox("Training", list(names), key="training_now_pick")
        if len(names) > 1
        else next(iter(names))
    )
    with st.container(border=True):
        detail(names[chosen], runs)


live()
