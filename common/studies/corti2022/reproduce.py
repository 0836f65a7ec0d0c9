"""`reproduce.py`: Corti et al. 2022's whole study in one command, stage by stage, for both learning methods.

Stages: dense + early-GMP training, late-GMP training, one-shot global pruning + finetuning, PIEs (with Q-Score
and UMAP), prediction depth, and the report. Every stage skips the work already on disk, so a rerun after a crash or
a change picks up where it stopped; the log says which stage ran, what it skipped and how long it took.

The plan (`StudyConfig`) becomes each stage script's typed configs here (`training_configs`, …): the same configs
its command line makes of the command printed for it (`tasks`), which a launcher runs and a person can paste.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from common import preflight
from common.cli import check_device, config_flags
from common.config import AT_LEAST_ONE, DISTINCT, NON_NEGATIVE, check_fields, help_field
from common.engine.objectives import OBJECTIVES, display_name
from common.errors import UsageError
from common.launch import Stage, Task, command_line
from common.log import setup_logging
from common.recipe import value_text
from common.study import Study
from common.studies.corti2022 import depth, pies, pruning_finetune, training
from common.studies.corti2022.commands import METHODS, finetune_command, script, training_command
from common.studies.corti2022.config import RunConfig, TrainConfig, preset_config, preset_run
from common.studies.corti2022.finetune import FinetuneConfig, FinetuneRunConfig, preset_finetune, preset_finetune_run
from common.studies.corti2022.paths import CortiPaths
from common.studies.corti2022.report import write_report

log = logging.getLogger("prune")


@dataclass(frozen=True)
class StudyConfig:
    """What a preset runs. The training recipes themselves come from the scripts' own presets."""

    preset: str = help_field("demo", "demo (digits, CPU minutes), study (Fashion-MNIST, 5 models per population, "
                                     "within an hour on 2 CPU cores) or paper (CIFAR-10, WRN-16-2, 30 models, a GPU)",
                             choices=("demo", "study", "paper"))
    models_number: int = help_field(3, "models per configuration (the paper: 30)")
    pruning_percentages: tuple = help_field((0.5, 0.9), "sparsities of every pruning method", nargs="*", item=float)
    prediction_depth_models: int = help_field(2, "models per population whose prediction depths are averaged")
    population_size: int = help_field(0, "models trained together (0 = fill the device)")
    eval_every: int = help_field(1, "training stages evaluate on the test set every N epochs (always at the end)")
    cuda_device: int = help_field(0, "GPU index; without CUDA everything runs on the CPU")
    data_dir: str = help_field("", "folder holding (or receiving) the dataset, e.g. cifar-10-batches-py "
                                        "(default: data/ in the repository folder)")
    output_root: str = help_field("", "root of models/, logs/ and pies/ (default: the repository folder)")
    stages: tuple = help_field((), "run only these stages (default all): train_gmp_early, train_gmp_late, finetune, "
                                   "pies, depth, report", nargs="*", item=str)
    progress: bool = help_field(True, "tqdm progress bars")
    allow_missing_members: bool = help_field(False, "the PIE and depth stages compare what remains of a population "
                                                    "some of whose model files are unreadable (else they stop, naming "
                                                    "the files and the command that retrains them)")
    smoke: bool = help_field(False, "check the whole pipeline in minutes before committing GPU-days: every stage of "
                                    "the preset with each training phase cut to about --smoke_steps steps on a "
                                    "--smoke_images-image training subset (batch sizes capped by it, learning-rate "
                                    "milestones and GMP windows scaled), everything else as the preset resolves it; "
                                    "written under <output_root>/smoke/")
    smoke_steps: int = help_field(4, "optimizer steps per training phase of a --smoke run (at least)")
    smoke_images: int = help_field(256, "training images of a --smoke run (a seeded, class-balanced subset)")

    @property
    def paths(self) -> CortiPaths:
        """Where it writes: --output_root, or its smoke/ folder for a --smoke run."""
        paths = CortiPaths.at(self.output_root)
        return paths.smoke() if self.smoke else paths

    @property
    def dataset(self) -> str:
        return preset_config("supervised", self.preset).dataset


# prediction_depth_models: 3, the fewest from which the depth gap's t interval gives a verdict (common.metrics.verdicts)
PRESETS = {
    "demo": dict(models_number=3, pruning_percentages=(0.5, 0.9), prediction_depth_models=3),
    "paper": dict(models_number=30, pruning_percentages=(0.3, 0.5, 0.7, 0.9, 0.95), prediction_depth_models=5),
    # evaluating 10,000 test images every epoch would cost a third of the training time: only at the end
    "study": dict(models_number=5, pruning_percentages=(0.5, 0.9), prediction_depth_models=3, eval_every=1000),
}


# ---- --smoke: the preset's recipes cut to a few steps per phase -----------------------------------------

def smoke_schedule(batch: int, study: StudyConfig) -> tuple[int, int]:
    """(epochs, batch) that run at least `smoke_steps` steps on `smoke_images` images: the batch capped by the
    subset, the epochs as few as reach the steps."""
    batch = min(batch, study.smoke_images)
    return -(-study.smoke_steps // max(1, study.smoke_images // batch)), batch


def scaled_milestones(milestones, epochs: int, new_epochs: int) -> tuple[int, ...]:
    """Milestones at the same fractions of the shortened run (merged where they meet, never before epoch 1)."""
    return tuple(sorted({max(1, round(m * new_epochs / epochs)) for m in milestones}))


def smoke_training(study: StudyConfig, method: str) -> dict:
    """The training recipe's fields a --smoke run cuts."""
    if not study.smoke:
        return {}
    recipe = preset_config(method, study.preset)
    epochs, batch = smoke_schedule(recipe.batch_size, study)
    cut = dict(train_subset=study.smoke_images, epochs=epochs, batch_size=batch,
               lr_milestones=scaled_milestones(recipe.lr_milestones, recipe.epochs, epochs))
    if not OBJECTIVES[method].classifier:  # its classifier has a phase of its own
        head_epochs, head_batch = smoke_schedule(recipe.batch_size_head, study)
        cut.update(head_epochs=head_epochs, batch_size_head=head_batch,
                   head_milestones=scaled_milestones(recipe.head_milestones, recipe.head_epochs, head_epochs))
    return cut


def smoke_finetune(study: StudyConfig, method: str) -> dict:
    if not study.smoke:
        return {}
    epochs, batch = smoke_schedule(preset_finetune(method, study.preset).batch_size, study)
    return dict(train_subset=study.smoke_images, epochs=epochs, batch_size=batch)


# ---- the plan as each stage script's typed configs --------------------------------------------------------

def _where(study: StudyConfig) -> dict:
    return dict(preset=study.preset, cuda_device=study.cuda_device, data_dir=study.data_dir,
                output_root=study.paths.output_root, progress=study.progress)


def training_configs(study: StudyConfig, method: str, schedule: str, first: int = 0,
                     last: int | None = None) -> tuple[TrainConfig, RunConfig]:
    """One GMP schedule's training (early: with the dense models) of seeds first..last (default: all)."""
    sparsities = ((0.0,) if schedule == "early" else ()) + study.pruning_percentages
    cfg = preset_config(method, study.preset, gmp_schedule=schedule, **smoke_training(study, method))
    run = preset_run(**_where(study), index_start=first,
                     index_end=study.models_number - 1 if last is None else last,
                     population_size=study.population_size, eval_every=study.eval_every,
                     pruning_percentages=sparsities)
    return cfg, run


def finetune_configs(study: StudyConfig, method: str) -> tuple[FinetuneConfig, FinetuneRunConfig]:
    cfg = preset_finetune(method, study.preset, **smoke_finetune(study, method))
    run = preset_finetune_run(**_where(study), models_number=study.models_number,
                              pruning_percentages=study.pruning_percentages, population_size=study.population_size,
                              eval_every=study.eval_every)
    return cfg, run


def pie_configs(study: StudyConfig, method: str) -> tuple[pies.PieConfig, RunConfig]:
    """UMAP draws model 0 of each population, so one PIE pass with all K models serves both."""
    where = _where(study)
    cfg = pies.preset_pies(method, study.preset, models_number=study.models_number, plot_q_score=True,
                           plot_umap=True, allow_missing_members=study.allow_missing_members)
    return cfg, RunConfig(**{k: where[k] for k in pies.RUN_FIELDS})


def depth_configs(study: StudyConfig, method: str) -> depth.DepthConfig:
    where = _where(study)
    return depth.preset_depth(method, study.preset, models_number=study.models_number,
                              prediction_depth_models=study.prediction_depth_models,
                              allow_missing_members=study.allow_missing_members,
                              **{k: where[k] for k in ("cuda_device", "data_dir", "output_root", "progress")})


def training_work(schedule: str):
    def work(study: StudyConfig, method: str):
        cfg, run = training_configs(study, method, schedule)
        return training.train, (cfg, run), training_command(method, cfg, run, ("gmp_schedule",))
    return work


def finetune_work(study: StudyConfig, method: str):
    cfg, run = finetune_configs(study, method)
    return pruning_finetune.finetune, (cfg, run), finetune_command(method, cfg, run)


def pies_work(study: StudyConfig, method: str):
    cfg, run = pie_configs(study, method)
    return pies.analyse, (cfg, run), command_line(script(method, "pie_kmodels_detection"), pies.pie_argv(method, cfg, run))


def depth_work(study: StudyConfig, method: str):
    cfg = depth_configs(study, method)
    return depth.analyse, (cfg,), command_line(script(method, "prediction_depth"), depth.depth_argv(method, cfg))


# each stage of one learning method: (study, method) -> (the function, its typed arguments, the command that runs it)
STAGE_WORK = {"train_gmp_early": training_work("early"), "train_gmp_late": training_work("late"),
              "finetune": finetune_work, "pies": pies_work, "depth": depth_work}


# ---- running it here ---------------------------------------------------------------------------------------

@dataclass
class Context:
    """One local run of the study: its plan, and each stage's timing for the report."""

    study: StudyConfig
    timings: list[dict] = field(default_factory=list)
    failed: int = 0

    @property
    def paths(self) -> CortiPaths:
        return self.study.paths


def per_method(name: str) -> callable:
    """Stage `name` for both learning methods, one after the other, timed for the report."""
    def stage(ctx: Context):
        for method in METHODS:
            work, configs, _ = STAGE_WORK[name](ctx.study, method)
            started = time.time()
            result = work(method, *configs)
            setup_logging(ctx.paths.log_file(ctx.study.dataset, method, "reproduce"))  # stages reset the logger
            seconds = time.time() - started
            did = f"{len(result)} models trained" if isinstance(result, list) else "done"
            ctx.failed += sum(bool(r.get("failed")) for r in result) if isinstance(result, list) else 0
            if isinstance(result, list) and not result:
                did = "skipped: everything already on disk"
            ctx.timings.append(dict(stage=name, method=method, seconds=round(seconds, 1), outcome=did))
            log.info("stage %s (%s): %s in %.1fs", name, display_name(method), did, seconds)
    return stage


def report(ctx: Context) -> Path:
    """report.md over what the stages wrote (pies/<dataset>/report.md)."""
    paths, dataset = ctx.paths, ctx.study.dataset
    preflight.check_outputs([paths.pies / dataset, paths.log_dir(dataset, METHODS[0])], preflight.ANALYSIS_BYTES)
    if not ctx.timings:  # only the report: no stage has opened the log yet
        setup_logging(paths.log_file(dataset, METHODS[0], "reproduce"))
    return write_report(paths, dataset, ctx.timings)


STAGES = {name: per_method(name) for name in STAGE_WORK} | {"report": report}


def run(study: StudyConfig) -> Path | None:
    """The study here, stage by stage; -> the report (when its stage ran)."""
    ctx = Context(study)
    done = {name: stage(ctx) for name, stage in STAGES.items() if name in (study.stages or STAGES)}
    total = sum(t["seconds"] for t in ctx.timings)
    log.info("study finished in %.1fs%s", total, f"; report: {done['report']}" if "report" in done else "")
    if ctx.failed:
        log.warning("%d models failed (non-finite loss) and are left out of every analysis: see the training logs",
                    ctx.failed)
    return done.get("report")


# ---- as a launcher's tasks ---------------------------------------------------------------------------------

def tasks(study: StudyConfig) -> list[Stage]:
    """The study as stages of tasks for a launcher (common.launch): each training stage's populations (a method x
    a chunk of --population_size seeds, 8 when it is 0) as tasks, then finetuning, PIEs and depth per method, then
    the report."""
    size = study.population_size or 8
    stages = []
    for name in STAGE_WORK:
        if name not in (study.stages or STAGES):
            continue
        stage = Stage(name)
        for method in METHODS:
            work, configs, command = STAGE_WORK[name](study, method)
            if not name.startswith("train"):
                stage.tasks.append(Task(f"{method} {name}", work, (method, *configs), command))
                continue
            schedule = name.removeprefix("train_gmp_")
            for first in range(0, study.models_number, size):
                last = min(first + size, study.models_number) - 1
                cfg, run_config = training_configs(study, method, schedule, first, last)
                stage.tasks.append(Task(f"{method} {name} seeds {first}-{last}", work, (method, cfg, run_config),
                                        training_command(method, cfg, run_config, ("gmp_schedule",))))
        stages.append(stage)
    if "report" in (study.stages or STAGES):
        alone = replace(study, stages=("report",))
        stages.append(Stage("report", [Task("report", run, (alone,), command_line("reproduce.py", argv(alone)))]))
    return stages


def argv(study: StudyConfig) -> list[str]:
    """reproduce.py's flags for `study` (STUDY.parse_argv reads them back)."""
    return ["--preset", study.preset, *config_flags(study, preset_study(study.preset), skip=("preset",))]


# ---- flags -----------------------------------------------------------------------------------------------

def preset_study(preset: str = "demo", **given) -> StudyConfig:
    return replace(StudyConfig(), **{**PRESETS[preset], "preset": preset, **given})


def resolve(given: tuple[dict]) -> StudyConfig:
    """The checked plan of reproduce.py's flags."""
    [flags] = given
    study = preset_study(**flags)
    unknown = [s for s in study.stages if s not in STAGES]
    if unknown:
        raise UsageError(f"--stages {','.join(unknown)}: choose from {', '.join(STAGES)}")
    if study.models_number < 2:
        raise UsageError(f"--models_number {study.models_number}: PIEs need populations of at least 2 models")
    bad = [s for s in study.pruning_percentages if not 0 < s < 1]
    if bad or not study.pruning_percentages:
        raise UsageError(f"--pruning_percentages {value_text(bad) if bad else 'is empty'}: sparsities must lie in "
                         f"(0, 1)")
    check_fields(study, dict(pruning_percentages=DISTINCT, population_size=NON_NEGATIVE,
                             prediction_depth_models=AT_LEAST_ONE, eval_every=AT_LEAST_ONE,
                             smoke_steps=AT_LEAST_ONE, smoke_images=AT_LEAST_ONE))
    check_device(study.cuda_device)
    return study


STUDY = Study(
    name="corti2022",
    doc="Corti et al. 2022: populations trained with cross-entropy and with SupCon, pruned one-shot and gradually "
        "(GMP early and late), compared through PIEs, Q-Score, prediction depth and UMAP. `--preset demo` (digits, "
        "CPU minutes), `study` (Fashion-MNIST, within an hour on 2 CPU cores) or `paper` (CIFAR-10, the authors' "
        "recipe, a GPU). The stage scripts (sup_training.py, clr_pie_kmodels_detection.py, …) run one stage each.",
    prefix="",
    configs=(StudyConfig,),
    presets={name: {**values, "preset": name} for name, values in PRESETS.items()},
    resolve=resolve,
    stages=STAGES,
    run=run,
    tasks=tasks,
    paths=lambda study: study.paths,
)


def parse(argv=None) -> StudyConfig:
    return STUDY.parse_argv(list(argv or []))


def main(argv=None):
    """The study from reproduce.py's flags (reproduce.py --study corti2022 …)."""
    return run(parse(argv))
