"""Logging and progress: one logger ('prune') that writes to the run's log file and, through `tqdm.write`, to
the terminal above the progress bar (a log line never cuts a bar in half); one bar per long stage, with an ETA.

Lines logged before a stage opens its log file (a corrupt checkpoint found while selecting models, say) reach the
terminal at once and the log file when it opens. Where stderr is not a terminal (a Slurm log, a pipe, `2> file`)
the bar is written as whole lines every `LINE_INTERVAL` seconds instead of being redrawn with carriage returns.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("prune")
LINE_INTERVAL = 60.0  # seconds between progress lines in a captured log
EARLY_LIMIT = 1000  # lines kept for the log file before it opens


class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _EarlyHandler(logging.Handler):
    """Before a log file is open: print each line (as Python does for an unconfigured logger) and keep it for the
    log file."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if len(self.records) < EARLY_LIMIT:
            self.records.append(record)
        print(record.getMessage(), file=sys.stderr)


def start_stage() -> None:
    """A stage begins (its flags are parsed): the previous stage's log file is closed, and lines go to the terminal
    and are kept until this stage opens its own log file (setup_logging)."""
    for old in [h for h in log.handlers if getattr(h, "ours", False) or isinstance(h, _EarlyHandler)]:
        log.removeHandler(old)
        old.close()
    log.addHandler(_EarlyHandler())


start_stage()


def setup_logging(log_file: Path) -> None:
    """Send the 'prune' logger to `log_file` and to the terminal, replacing a previous stage's handlers; lines
    logged since the stage began (there was no file yet) are written to the file first."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    early = [h for h in log.handlers if isinstance(h, _EarlyHandler)]
    for old in [h for h in log.handlers if getattr(h, "ours", False)] + early:
        log.removeHandler(old)
        old.close()
    log.propagate = False  # libraries that configure the root logger would print every line twice
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    file_handler = logging.FileHandler(log_file)
    for handler in (file_handler, _TqdmHandler()):
        handler.setFormatter(fmt)
        handler.ours = True
        log.addHandler(handler)
    for record in (r for handler in early for r in handler.records):
        file_handler.handle(record)


class _Lines:
    """tqdm's output where stderr is not a terminal: each refresh becomes one whole line (no '\\r' redraws)."""

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            sys.stderr.write(text + "\n")

    def flush(self) -> None:
        sys.stderr.flush()


def progress(total: int, desc: str, enabled: bool = True, unit: str = "it") -> tqdm:
    """The stage's one bar: elapsed, ETA and rate; disabled bars cost nothing."""
    terminal = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=terminal, leave=False,
                file=sys.stderr if terminal else _Lines(), smoothing=0.1,
                mininterval=0.1 if terminal else LINE_INTERVAL, ncols=None if terminal else 100)
