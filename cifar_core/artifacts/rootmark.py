"""The artifacts root's identity: one file, ``.cifar_root``, that says which root a job queue
writes to, however each machine mounts it (``/mnt/runs`` here, ``/data/runs`` there).

    mark = root_mark(root, create=True)     # {"id": "...", "host": ..., "path": ...}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from pathlib import Path

from cifar_core.errors import ArtifactError
from cifar_core.fileio import write_json

ROOT_MARK = ".cifar_root"


def root_mark(root: Path, create: bool = False) -> dict | None:
    """The root's mark (created with a new id if ``create`` and absent); None if it has none."""
    path = Path(root) / ROOT_MARK
    if not path.exists():
        if not create:
            return None
        Path(root).mkdir(parents=True, exist_ok=True)
        mark = {
            "id": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "path": str(Path(root).resolve()),
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        draft = write_json(path.with_name(f"{ROOT_MARK}.{mark['id']}"), mark)
        try:
            os.link(draft, path)  # never replaces: of two processes racing, the first one's lands
        except FileExistsError:
            pass
        finally:
            draft.unlink()
        return root_mark(root)
    try:
        mark = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ArtifactError(
            f"{path}: unreadable ({type(error).__name__}): delete it to mark the root anew"
        ) from None
    if not isinstance(mark, dict) or not isinstance(mark.get("id"), str):
        raise ArtifactError(f"{path}: not an artifacts root's mark (no id): delete it to mark the root anew")
    return mark
