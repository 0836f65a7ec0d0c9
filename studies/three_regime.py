"""Zhou et al. 2023's three-regime phase diagram for one objective: `python studies/three_regime.py --preset demo
--objective supcon` (see README.md, "The three-regime phase diagram"). `python reproduce.py --study three_regime`
runs both objectives and the phase plots."""
import os
import signal
import sys

if __name__ == "__main__":  # Ctrl-C while the libraries below load: one line, exit 130 (then run_main's handling)
    signal.signal(signal.SIGINT, lambda *_: os._exit(print(f"{sys.argv[0]}: interrupted (Ctrl-C) while starting; "
                                                           f"nothing was done", file=sys.stderr) or 130))

from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's packages, from any folder

from common.cli import run_main  # noqa: E402
from common.studies.three_regime.run import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
