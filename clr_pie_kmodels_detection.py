"""PIEs (pruning identified exemplars), Q-Score, PIE overlaps and UMAP for supcon populations. See README.md."""
import os
import signal
import sys

if __name__ == "__main__":  # Ctrl-C while the libraries below load: one line, exit 130 (then run_main's handling)
    signal.signal(signal.SIGINT, lambda *_: os._exit(print(f"{sys.argv[0]}: interrupted (Ctrl-C) while starting; "
                                                           f"nothing was done", file=sys.stderr) or 130))

from common.cli import run_main  # noqa: E402
from common.studies.corti2022.pies import main  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: main("supcon", argv))
