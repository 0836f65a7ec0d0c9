"""`python reproduce.py --study tickets`: IMP, ticket re-training and transfer for every pruning objective, then the
layerwise tickets (Figure 4: the objectives of --layerwise_objectives pruned in their first N conv layers only, for
each N of --layerwise_depths), then the report, through the study contract (common.study)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from common.config import help_field
from common.errors import UsageError
from common.launch import Stage, Task
from common.paths import Paths
from common.study import Study
from common.studies.per_objective import Objectives, Plan, resolve_plan
from common.studies.tickets.config import OBJECTIVES, STAGES, TicketsConfig, TicketsRun
from common.studies.tickets.imp import Trunk
from common.studies.tickets.commands import ENTRY
from common.studies.tickets.run import STAGES_RUN, run_objective

log = logging.getLogger("prune")
LAYERWISE_STAGES = ("imp", "retrain")  # a layerwise ticket is found and re-trained; its features are not probed


@dataclass(frozen=True)
class TicketsOptions(Objectives):
    """reproduce.py's own flags for the tickets study."""

    layerwise_objectives: tuple = help_field(("supervised", "rotnet"), "objectives whose layerwise tickets (Caron et "
                                             "al. Fig. 4) are found, pruning their first N conv layers only",
                                             nargs="*", item=str)
    layerwise_depths: str = help_field("auto", "the N of the layerwise tickets: auto (1, a third and two thirds of "
                                               "the encoder's conv layers), none, or layer counts such as 1,3,6")


def layerwise(config: TicketsConfig, options: dict) -> tuple[tuple[str, int], ...]:
    """(objective, depth) of every layerwise ticket asked, checked."""
    objectives = tuple(options.get("layerwise_objectives", TicketsOptions.layerwise_objectives))
    depths_text = options.get("layerwise_depths", "auto")
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise UsageError(f"--layerwise_objectives {','.join(objectives)}: choose among {', '.join(OBJECTIVES)}")
    if depths_text == "none":
        return ()
    size = len(Trunk.full_pool(config))
    if depths_text == "auto":
        depths = sorted({1, size // 3, 2 * size // 3} - {0})
    else:
        parts = [d for d in depths_text.split(",") if d]
        if not parts or not all(d.isdigit() and 1 <= int(d) <= size for d in parts):
            raise UsageError(f"--layerwise_depths {depths_text}: auto, none or layer counts from 1 to {size} "
                             f"({config.arch}'s conv layers), e.g. 1,3,6")
        depths = [int(d) for d in parts]
    return tuple((o, d) for d in depths for o in objectives)


def resolve(given: tuple[dict, dict, dict]) -> Plan:
    plan = resolve_plan(ENTRY, given, OBJECTIVES)
    return replace(plan, extra=dict(layerwise=layerwise(plan.config, given[2])))


def run(plan: Plan) -> list[dict]:
    """Here: every objective's stages but the report, then the layerwise tickets, then the report once."""
    started, models, wanted = time.time(), [], plan.run.stages
    per_objective = tuple(s for s in wanted if s != "report")
    if per_objective:
        for objective in plan.objectives:
            models += run_objective(*plan.of(objective, per_objective))
    for objective, depth in plan.extra["layerwise"]:
        stages = tuple(s for s in wanted if s in LAYERWISE_STAGES)
        if stages:
            models += run_objective(*plan.of(objective, stages, prune_first_n_layers=depth))
    if "report" in wanted:  # over every objective on disk; it runs under the first one's name
        run_objective(*plan.of(OBJECTIVES[0], ("report",)))
    log.info("tickets study finished in %.1fs (%d models trained)", time.time() - started, len(models))
    return models


def _task(label: str, cfg: TicketsConfig, run_config: TicketsRun) -> Task:
    return Task(label, run_objective, (cfg, run_config), ENTRY.command(cfg, run_config))


def tasks(plan: Plan) -> list[Stage]:
    """Every per-objective stage as one task per objective and group of --population_size seeds (8 when it is 0; a
    group's IMP levels run in order), then the layerwise stages (after every dense level 0 they start from
    exists), then the report."""
    wanted, first, last = plan.run.stages, plan.run.index_start, plan.run.index_end
    size = plan.run.population_size or 8
    stages = []
    for stage in (s for s in STAGES if s in wanted and s != "report"):
        stages.append(Stage(stage, [
            _task(f"{objective} {stage} seeds {a}-{min(a + size - 1, last)}",
                  *plan.of(objective, (stage,), index_start=a, index_end=min(a + size - 1, last)))
            for objective in plan.objectives for a in range(first, last + 1, size)]))
    for stage in (s for s in LAYERWISE_STAGES if s in wanted):
        layer_tasks = [_task(f"{objective} layers 1-{depth} {stage}",
                             *plan.of(objective, (stage,), prune_first_n_layers=depth))
                       for objective, depth in plan.extra["layerwise"]]
        if layer_tasks:
            stages.append(Stage(f"layerwise {stage}", layer_tasks))
    if "report" in wanted:
        stages.append(Stage("report", [_task("report", *plan.of(OBJECTIVES[0], ("report",)))]))
    return stages


STUDY = Study(
    name="tickets",
    doc="Caron et al. 2020's winning tickets: iterative magnitude pruning with late rewinding by every objective of "
        "--objectives (labels, SupCon, self-supervised pretexts), tickets re-trained on labels from their rewind "
        "weights and from a re-initialisation, random-mask controls with and without the natural-sparsity "
        "correction, transfer of the pruned features, layerwise tickets, and the report. One objective at a time: "
        "studies/tickets.py --objective O.",
    prefix="tickets",
    configs=(TicketsConfig, TicketsRun, TicketsOptions),
    presets={name: {**values, **ENTRY.run_presets.get(name, {})} for name, values in ENTRY.presets.items()},
    resolve=resolve,
    stages=STAGES_RUN,
    run=run,
    tasks=tasks,
    paths=lambda plan: Paths.at(plan.run.output_root),
    skip=("objective",),
    preset="demo",
)
