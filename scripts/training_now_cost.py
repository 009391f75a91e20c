"""What one refresh of the Training now page costs with N live (simulated) trainings:

    python scripts/training_now_cost.py [N]

The engine's read (``status.trainings``) and the page's whole script run (Streamlit's
AppTest, as a browser's refresh runs it), median of 20 each. The engine's half alone is
``python -m cifar_core benchmark --status N``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cifar_core.benchmark.refresh import refresh_cost, simulated_trainings
from cifar_core.runtime import cpu_model

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "dashboard" / "views" / "training_now.py"


def page_run_ms(root: Path, trainings: int, repeats: int = 20) -> list[float]:
    from streamlit.testing.v1 import AppTest

    os.environ["CIFAR_ARTIFACTS"] = str(root)
    sys.path.insert(0, str(PAGE.parent.parent))  # the pages import the dashboard's helpers
    with simulated_trainings(root, trainings):
        time.sleep(5)  # a few epochs of history each
        app = AppTest.from_file(str(PAGE), default_timeout=120)
        app.run()  # imports and caches once, as a server has after the first visit
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            app.run()
            if app.exception:
                raise RuntimeError(app.exception[0].value)
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        engine = refresh_cost(Path(a), trainings=n)
        page = page_run_ms(Path(b), n)
    print(
        f"{engine['running']} of {n} trainings running, on {cpu_model()}: the engine reads them in "
        f"{engine['status_read_ms']:.1f} ms; the Training now page's whole run takes "
        f"{statistics.median(page):.0f} ms (max {max(page):.0f}; median of 20, Streamlit's AppTest)"
    )


if __name__ == "__main__":
    main()
