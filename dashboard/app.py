"""CIFAR-10 workbench dashboard: ``streamlit run dashboard/app.py``.

Reads the runs in ``artifacts/`` (or ``$CIFAR_ARTIFACTS``) through cifar_core; never trains.
``cifar_core`` is installed (``pip install -e .``); Streamlit puts this folder on the
path, so the pages import ``common`` directly.
"""

from __future__ import annotations

import streamlit as st
from common import admin, loading, serving

st.set_page_config(page_title="CIFAR-10 workbench", page_icon=":material/image_search:", layout="wide")

pages = [
    st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page("views/run.py", title="Run", icon=":material/description:", url_path="run"),
    st.Page("views/curves.py", title="Training curves", icon=":material/show_chart:"),
    st.Page("views/training_now.py", title="Training now", icon=":material/model_training:"),
    st.Page("views/per_class.py", title="Per-class & confusion", icon=":material/grid_on:"),
    st.Page("views/mistakes.py", title="Mistakes (cat vs dog)", icon=":material/pets:"),
    st.Page("views/classify.py", title="Classify a photo", icon=":material/upload:"),
    st.Page("views/compare.py", title="Compare two models", icon=":material/compare_arrows:"),
    st.Page("views/agreement.py", title="Agreement", icon=":material/groups:"),
    st.Page("views/map.py", title="Map of the test set", icon=":material/scatter_plot:"),
    st.Page("views/data.py", title="The data", icon=":material/dataset:"),
    st.Page("views/ladder.py", title="Ladders", icon=":material/stairs:"),
    st.Page("views/tuning.py", title="Tuning", icon=":material/tune:"),
    st.Page("views/robustness.py", title="Robustness", icon=":material/shield:"),
]
page = st.navigation(pages, expanded=True)  # all 14 pages listed, no "View more"

sidebar = st.sidebar.container()  # filled after the page: its content waits for nothing
try:
    page.run()
finally:  # also after a page's st.stop()
    with sidebar:
        runs, bad = loading.load_runs()
        st.caption(
            f"{len(runs)} run(s) in `{loading.artifacts_dir()}`" + (f", {len(bad)} unreadable" if bad else "")
        )
        admin.token_box()
        serving.trust_switch(runs)
    # Once the first page is drawn, the models start loading (exported first on a new machine).
    serving.preload_models()
