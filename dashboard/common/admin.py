"""Who may change things from the dashboard (Stop, Cancel, "Trust stored code").

- Listening on the loopback only (``.streamlit/config.toml``: ``address = "localhost"``): the
  person at the machine, as always (unless started read-only).
- Listening beyond it (``--server.address 0.0.0.0``, a team's server): only a session that
  typed the admin token (``$CIFAR_ADMIN_TOKEN``, or ``-- --admin-token TOKEN``). Without a
  token the dashboard only reads.
"""

from __future__ import annotations

import hmac
import os
import sys

import streamlit as st

from common import loading

TOKEN_ENV = "CIFAR_ADMIN_TOKEN"
QUEUE_ENV = "CIFAR_DB"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
GIVEN_KEY = "admin_token_given"


def _argument(flag: str) -> str | None:
    argv = sys.argv[1:]
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def token() -> str | None:
    return os.environ.get(TOKEN_ENV) or _argument("--admin-token")


def beyond_loopback() -> bool:
    """True when the server listens on more than the loopback (unset: every interface)."""
    address = st.get_option("server.address")
    return not address or address not in LOOPBACK


def may_change() -> bool:
    """May this session stop, cancel or trust stored code?"""
    if loading.read_only():
        return False
    if not beyond_loopback():
        return True
    expected = token()
    return bool(expected) and hmac.compare_digest(st.session_state.get(GIVEN_KEY, ""), expected)


def why_not() -> str:
    """Why this session only reads, for the page's caption ("" when it may change things)."""
    if may_change():
        return ""
    if loading.read_only():
        return "This dashboard only reads (started read-only): no Stop buttons."
    if not token():
        return "This dashboard listens beyond this machine and has no admin token: it only reads."
    return "Stop, Cancel and Trust stored code need the admin token (sidebar)."


def token_box() -> None:
    """The sidebar's admin token field, on a server beyond the loopback that has a token."""
    if loading.read_only() or not beyond_loopback() or not token():
        return
    if may_change():
        st.sidebar.caption("Admin: Stop, Cancel and Trust stored code are on for this session.")
        return
    st.sidebar.text_input(
        "Admin token",
        type="password",
        key=GIVEN_KEY,
        help="Stop, Cancel and Trust stored code need it on a dashboard others can reach",
    )


def queue_url() -> str | None:
    """The job queue this dashboard shows (``$CIFAR_DB`` or ``-- --queue URL``), if any."""
    return os.environ.get(QUEUE_ENV) or _argument("--queue")
