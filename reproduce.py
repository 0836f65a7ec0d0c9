"""Reproduce a study end to end. Corti et al. 2022 (the default): `python reproduce.py --preset demo` (digits, CPU
minutes) or `--preset paper --cuda_device 0` (CIFAR-10, the paper's recipe). Caron et al. 2020's winning tickets:
`python reproduce.py --study tickets --preset demo`. Zhou et al. 2023's three-regime phase diagram: `--study
three_regime`. `--study S --help` lists a study's flags. See README.md."""
import importlib
import sys

from common.cli import UsageError, run_main

STUDIES = {  # --study name -> the module whose main(argv) runs it
    "corti2022": "common.studies.corti2022.reproduce",
    "tickets": "common.studies.tickets.reproduce",
    "three_regime": "common.studies.three_regime.reproduce",
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    study = "corti2022"
    for i, flag in enumerate(argv):
        if flag == "--study" or flag.startswith("--study="):
            study = flag.split("=", 1)[1] if "=" in flag else (argv[i + 1] if i + 1 < len(argv) else "")
            del argv[i:i + (1 if "=" in flag else 2)]
            break
    if study not in STUDIES:
        raise UsageError(f"--study {study or '(missing)'}: choose from {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[study]).main(argv)


if __name__ == "__main__":
    run_main(main)
