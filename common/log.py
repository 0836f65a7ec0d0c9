"""Logging and progress: one logger ('prune') that writes to the run's log file and, through `tqdm.write`, to
the terminal above the progress bar (a log line never cuts a bar in half); one bar per long stage, with an ETA."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("prune")


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(log_file: Path) -> None:
    """Send the 'prune' logger to `log_file` and to the terminal, replacing a previous stage's handlers."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    for old in [h for h in log.handlers if getattr(h, "ours", False)]:
        log.removeHandler(old)
        old.close()
    log.propagate = False  # libraries that configure the root logger would print every line twice
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(log_file), _TqdmHandler()):
        handler.setFormatter(fmt)
        handler.ours = True
        log.addHandler(handler)


def progress(total: int, desc: str, enabled: bool = True, unit: str = "it") -> tqdm:
    """The stage's one bar: elapsed, ETA and rate; disabled bars cost nothing."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True, leave=False,
                file=sys.stderr, smoothing=0.1)
