"""The coordination server's first moments: processes that start together on a new
database each set up its tables once, and none fails on another's half-made schema."""

from __future__ import annotations

import threading

from cifar_core import database
from cifar_core.cluster import queue
from cifar_core.tuning import storage

STARTERS = 4


def _at_once(work) -> list[BaseException]:
    """Run ``work(i)`` in STARTERS threads released together; the errors they raised."""
    gate, errors = threading.Barrier(STARTERS), []

    def one(i):
        gate.wait()
        try:
            work(i)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_studies_opened_at_once_on_a_new_database_share_one_schema(pg, tmp_path):
    errors = _at_once(lambda i: storage.open_study(tmp_path, "together", seed=i, url=pg, heartbeat=5))
    assert errors == []
    with database.connect(pg) as conn:
        names = conn.execute("SELECT study_name FROM studies").fetchall()
    assert names == [("together",)]


def test_queues_prepared_at_once_on_a_new_database_share_one_schema(pg):
    errors = _at_once(lambda i: queue.prepare(pg))
    assert errors == []
    with database.connect(pg) as conn:
        assert conn.execute("SELECT count(*) FROM cifar_core_meta").fetchone()[0] == 0


def test_a_reader_polling_a_new_database_while_studies_open_never_races_their_tables(pg, tmp_path):
    from cifar_core.errors import ArtifactError

    def open_or_read(i):
        if i % 2:
            storage.open_study(tmp_path, "together", seed=i, url=pg, heartbeat=5)
            return
        try:  # the study may not exist yet: said as one ArtifactError, never a schema clash
            storage.load_study(tmp_path, "together", url=pg)
        except ArtifactError:
            pass

    assert _at_once(open_or_read) == []
