"""Train supervised (cross-entropy) models, dense or with gradual magnitude pruning. See README.md."""
import os
import signal
import sys


def interrupted_while_starting(*_):
    """Ctrl-C while the libraries below load (seconds): one line, exit 130; run_main handles it from then on."""
    print(f"{sys.argv[0]}: interrupted (Ctrl-C) while starting; nothing was done", file=sys.stderr)
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted_while_starting)

from common.cli import run_main  # noqa: E402
from common.studies.corti2022.training import main  # noqa: E402

if __name__ == "__main__":
    run_main(lambda argv: main("supervised", argv))
