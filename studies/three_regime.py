"""Zhou et al. 2023's three-regime phase diagram for one objective: `python studies/three_regime.py --preset demo
--objective supcon` (see README.md, "The three-regime phase diagram"). `python reproduce.py --study three_regime`
runs both objectives and the phase plots."""
import os
import signal
import sys


def interrupted_while_starting(*_):
    """Ctrl-C while the libraries below load (seconds): one line, exit 130; run_main handles it from then on."""
    print(f"{sys.argv[0]}: interrupted (Ctrl-C) while starting; nothing was done", file=sys.stderr)
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted_while_starting)

from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's packages, from any folder

from common.cli import run_main  # noqa: E402
from common.studies.three_regime.run import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
