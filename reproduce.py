"""Reproduce a study end to end. Corti et al. 2022 (the default): `python reproduce.py --preset demo` (digits, CPU
minutes) or `--preset paper --cuda_device 0` (CIFAR-10, the paper's recipe). Caron et al. 2020's winning tickets:
`python reproduce.py --study tickets --preset demo`. Zhou et al. 2023's three-regime phase diagram: `--study
three_regime`. `--launcher slurm` spreads any of them over a Slurm cluster (`--dry_run` prints the plan). `--study
S --help` lists a study's flags. See README.md."""
import importlib
import sys
import time

from common.cli import OneLineParser, UsageError, add_config_args, given_values, run_main

STUDIES = {  # --study name -> the module whose main(argv) runs it and plan(argv) lists its tasks
    "corti2022": "common.studies.corti2022.reproduce",
    "tickets": "common.studies.tickets.reproduce",
    "three_regime": "common.studies.three_regime.reproduce",
}


def main(argv=None):
    from dataclasses import replace

    from common.launch import LaunchConfig, launch_stages

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = OneLineParser(prog="reproduce.py", add_help=False)
    parser.add_argument("--study", default="corti2022")
    add_config_args(parser, LaunchConfig)
    known, rest = parser.parse_known_args(argv)
    if known.study not in STUDIES:
        raise UsageError(f"--study {known.study}: choose from {', '.join(STUDIES)}")
    launch = replace(LaunchConfig(), **given_values(known, LaunchConfig))
    study = importlib.import_module(STUDIES[known.study])
    if launch.launcher == "local" and not launch.dry_run:
        return study.main(rest)
    stages, paths = study.plan(rest)
    if launch.launcher == "slurm" and not launch.dry_run:
        from common.log import setup_logging
        from common.preflight import check_slurm

        check_slurm()
        setup_logging(paths.logs / "slurm" / f"launch_{time.strftime('%Y%m%d_%H%M%S')}.log")
    return launch_stages(stages, launch, paths.logs / "slurm")


main.launches_itself = True  # it splits the study into tasks itself (common.cli.run_main)


if __name__ == "__main__":
    run_main(main)
