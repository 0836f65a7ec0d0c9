"""Reproduce a study end to end: `python reproduce.py --preset demo` (Corti et al. 2022 on digits, CPU minutes),
`--study tickets` (Caron et al. 2020's winning tickets), `--study three_regime` (Zhou et al. 2023's phase
diagram). `--launcher slurm` spreads any of them over a Slurm cluster (`--dry_run` prints the plan); `--list`
shows every population on disk. `--study NAME --help` lists that study's flags with each preset's defaults.
See README.md."""
import os
import signal
import sys


def interrupted_while_starting(*_):
    """Ctrl-C while the libraries below load (seconds): one line, exit 130; run_main handles it from then on."""
    print(f"{sys.argv[0]}: interrupted (Ctrl-C) while starting; nothing was done", file=sys.stderr)
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted_while_starting)

import time  # noqa: E402

import pandas as pd  # noqa: E402

from common.cli import OneLineParser, add_config_args, given_values, run_main  # noqa: E402
from common.errors import UsageError  # noqa: E402
from common.inventory import models_table, populations_table  # noqa: E402
from common.io import write_csv  # noqa: E402
from common.launch import LaunchConfig, launch_stages  # noqa: E402
from common.log import setup_logging  # noqa: E402
from common.paths import Paths  # noqa: E402
from common.preflight import check_slurm  # noqa: E402
from common.study import Study  # noqa: E402
from common.studies import STUDIES  # noqa: E402

DEFAULT = "corti2022"  # the study reproduce.py runs without --study


def parser_for(study: Study) -> OneLineParser:
    """reproduce.py's flags for `study`: --study and --list, the launcher's, and the study's own."""
    prog = "reproduce.py" if study.name == DEFAULT else f"reproduce.py --study {study.name}"
    parser = OneLineParser(prog=prog, description=study.doc)
    parser.add_argument("--study", choices=tuple(STUDIES), default=DEFAULT,
                        help=f"the study to run: {', '.join(STUDIES)} (default: {DEFAULT}); with --help, its flags")
    parser.add_argument("--list", action="store_true",
                        help="print the populations on disk under --output_root (every study's; with --study, that "
                             "one's): seeds, recipe fingerprints, accuracy, provenance; write one row per model to "
                             "logs/models.csv, and exit")
    add_config_args(parser, LaunchConfig)
    study.add_flags(parser)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    head = OneLineParser(prog="reproduce.py", add_help=False)
    head.add_argument("--study")
    asked = head.parse_known_args(argv)[0].study
    if asked is not None and asked not in STUDIES:
        raise UsageError(f"--study {asked}: choose from {', '.join(STUDIES)}")
    study = STUDIES[asked or DEFAULT]
    args = parser_for(study).parse_args(argv)
    if args.list:
        return list_populations([study] if asked else list(STUDIES.values()), Paths.at(args.output_root))
    launch = LaunchConfig(**given_values(args, LaunchConfig))
    plan = study.plan(args)
    if launch.launcher == "local" and not launch.dry_run:
        return study.run(plan)
    stages, paths = study.tasks(plan), study.paths(plan)
    if launch.launcher == "slurm" and not launch.dry_run:
        check_slurm()
        setup_logging(paths.logs / "slurm" / f"launch_{time.strftime('%Y%m%d_%H%M%S')}.log")
    return launch_stages(stages, launch, paths.logs / "slurm")


main.launches_itself = True  # it splits the study into tasks itself (common.cli.run_main)


def list_populations(studies: list[Study], paths: Paths) -> None:
    """`reproduce.py --list`: the populations on disk, printed; the models, to logs/models.csv."""
    table = models_table(paths)
    models = pd.concat([study.models(table) for study in studies], ignore_index=True)
    if models.empty:
        print(f"no models of {', '.join(study.name for study in studies)} under {paths.models}")
        return None
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", None):
        print(populations_table(models).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    write_csv(models, paths.models_csv())
    bad = int((models["provenance"] != "ok").sum())
    print(f"{len(models)} models; {bad} not ok (see the provenance column); one row per model: {paths.models_csv()}")
    return None


if __name__ == "__main__":
    run_main(main)
