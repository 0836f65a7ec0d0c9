"""`python reproduce.py --study tickets`: IMP, ticket re-training and transfer for every pruning objective, then the
layerwise tickets (Figure 4: the objectives of --layerwise_objectives pruned in their first N conv layers only, for
each N of --layerwise_depths), then the report (common.studies.per_objective)."""
from __future__ import annotations

import re

from common.cli import OneLineParser, UsageError
from common.launch import Stage, Task, command_line
from common.studies.per_objective import plan as per_objective_plan
from common.studies.per_objective import reproduce
from common.studies.tickets import run
from common.studies.tickets.config import LAYERWISE_DEPTHS, OBJECTIVES, PRESET_OBJECTIVES, STAGES
from common.studies.tickets.imp import Trunk, balanced_split

LAYERWISE_STAGES = ("imp", "retrain")  # a layerwise ticket is found and re-trained; its features are not probed


def main(argv=None):
    layerwise, rest = _layerwise_flags(argv)
    if any(flag in rest for flag in ("-h", "--help")):
        return reproduce("tickets", run.main, OBJECTIVES, STAGES, (), rest)
    asked_stages = _stages(rest)
    per_objective = [s for s in asked_stages[1] if s != "report"]
    models = reproduce("tickets", run.main, OBJECTIVES, STAGES, (), _with_stages(rest, per_objective)) \
        if per_objective else []
    for objective, depth in layerwise:
        stages = [s for s in asked_stages[1] if s in LAYERWISE_STAGES]
        if stages:
            models += run.main(_layerwise_argv(rest, objective, depth, stages))
    if "report" in asked_stages[1]:
        run.main(_report_argv(rest))
    return models


def plan(argv=None):
    """The per-objective stages, then the layerwise ones (after every dense level 0 they start from exists), then
    the report."""
    layerwise, rest = _layerwise_flags(argv)
    asked_stages = _stages(rest)
    per_objective = [s for s in asked_stages[1] if s != "report"]
    stages, paths = per_objective_plan("tickets", run.main, OBJECTIVES, STAGES, (), _with_stages(rest, per_objective),
                                       argv_split) if per_objective else ([], _paths(rest))
    for stage in (s for s in LAYERWISE_STAGES if s in asked_stages[1]):
        tasks = []
        for objective, depth in layerwise:
            task_argv = _layerwise_argv(rest, objective, depth, [stage])
            label = f"last {depth[4:]}" if depth.startswith("last") else f"first {depth}"
            tasks.append(Task(f"{objective} layers {label} {stage}", run.main, (task_argv,),
                              command_line("studies/tickets.py", task_argv)))
        if tasks:
            stages.append(Stage(f"layerwise {stage}", tasks))
    if "report" in asked_stages[1]:
        task_argv = _report_argv(rest)
        stages.append(Stage("report", [Task("report", run.main, (task_argv,),
                                            command_line("studies/tickets.py", task_argv))]))
    return stages, paths


def argv_split(stage: str, argv: list[str]) -> list[tuple[str, list[str]]]:
    """One task per group of --population_size seeds (8 when it is 0): a group's IMP levels run in order."""
    _, tickets_run = run.parse(argv)
    size = tickets_run.population_size or 8
    firsts = range(tickets_run.index_start, tickets_run.index_end + 1, size)
    return [(f" seeds {a}-{min(a + size - 1, tickets_run.index_end)}",
             ["--index_start", str(a), "--index_end", str(min(a + size - 1, tickets_run.index_end))]) for a in firsts]


def _layerwise_flags(argv) -> tuple[list[tuple[str, str]], list[str]]:
    """(objective, layers) pairs of the layerwise tickets ('3': the first 3 conv layers, 'last6': the last 6), and
    the other flags (with the preset's --objectives unless given)."""
    parser = OneLineParser(prog="reproduce.py --study tickets", add_help=False)
    parser.add_argument("--layerwise_objectives", default="supervised,rotnet")
    parser.add_argument("--layerwise_depths", default="")
    known, rest = parser.parse_known_args(argv or [])
    if any(flag in rest for flag in ("-h", "--help")):
        print("reproduce.py --study tickets [--layerwise_objectives supervised,rotnet] [--layerwise_depths auto|split|"
              "none|N,lastN,...]: layerwise tickets (Figure 4) for those objectives, pruning the first N (or the last "
              "N) conv layers; split = the first N and the last (pool - N) layers that hold as many weights; auto = "
              "split plus 1, a third and two thirds of the encoder's conv layers; default: the preset's (demo none, "
              "study split, paper auto)")
        return [], rest
    if "--objectives" not in rest:
        rest = ["--objectives", ",".join(PRESET_OBJECTIVES[_preset(rest)]), *rest]
    objectives = [o for o in known.layerwise_objectives.split(",") if o]
    if any(o not in OBJECTIVES for o in objectives):
        raise UsageError(f"--layerwise_objectives {known.layerwise_objectives}: choose among {', '.join(OBJECTIVES)}")
    cfg, _ = run.parse(_base(rest))
    asked = known.layerwise_depths or LAYERWISE_DEPTHS[_preset(rest)]
    if asked == "none":
        return [], rest
    size = len(Trunk.full_pool(cfg))
    split = balanced_split(cfg.arch)
    if asked in ("auto", "split"):
        depths = [str(split), f"last{size - split}"]
        depths += [str(d) for d in sorted({1, size // 3, 2 * size // 3} - {0, split})] if asked == "auto" else []
    else:
        depths = [d for d in asked.split(",") if d]
        if not depths or not all(re.fullmatch(r"(last)?\d+", d) and 1 <= int(d.removeprefix("last")) <= size
                                 for d in depths):
            raise UsageError(f"--layerwise_depths {asked}: auto, split, none or layer counts from 1 to {size} "
                             f"({cfg.arch}'s conv layers; lastN for the last N), e.g. 1,3,last6")
    return [(o, d) for d in depths for o in objectives], rest


def _preset(rest: list[str]) -> str:
    parser = OneLineParser(add_help=False)
    parser.add_argument("--preset", default="demo")
    return parser.parse_known_args(rest)[0].preset


def _stages(rest: list[str]) -> tuple[str, list[str]]:
    """(the --stages value as given, the stages it asks for), checked."""
    parser = OneLineParser(add_help=False)
    parser.add_argument("--stages", default=",".join(STAGES))
    given = parser.parse_known_args(rest)[0].stages
    wanted = list(STAGES) if given == "all" else [s for s in given.split(",") if s]
    if not wanted or any(s not in STAGES for s in wanted):
        raise UsageError(f"--stages {given}: choose among {', '.join(STAGES)}")
    return given, wanted


def _with_stages(rest: list[str], stages: list[str]) -> list[str]:
    """The per-objective part: the asked stages but the report, which runs once after the layerwise tickets."""
    return _without(rest, "--stages") + ["--stages", ",".join(stages)]


def _without(rest: list[str], *flags: str) -> list[str]:
    parser = OneLineParser(add_help=False)
    for flag in flags:
        parser.add_argument(flag)
    return parser.parse_known_args(rest)[1]


def _base(rest: list[str]) -> list[str]:
    """The flags for studies/tickets.py itself (not reproduce.py's): the preset defaults to demo here."""
    flags = _without(rest, "--stages", "--objectives")
    return flags if "--preset" in flags else ["--preset", "demo", *flags]


def _paths(rest: list[str]):
    from common.paths import Paths

    parser = OneLineParser(add_help=False)
    parser.add_argument("--output_root", default="")
    return Paths.at(parser.parse_known_args(rest)[0].output_root)


def _report_argv(rest: list[str]) -> list[str]:
    """The report covers every objective on disk; it runs under the first one's name."""
    return _base(rest) + ["--objective", OBJECTIVES[0], "--stages", "report"]


def _layerwise_argv(rest: list[str], objective: str, depth: str, stages: list[str]) -> list[str]:
    flag = ["--prune_last_n_layers", depth[4:]] if depth.startswith("last") else ["--prune_first_n_layers", depth]
    return _base(rest) + ["--objective", objective, *flag, "--stages", *stages]
