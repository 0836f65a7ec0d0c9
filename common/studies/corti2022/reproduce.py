"""`reproduce.py`: the whole study in one command, stage by stage, for both learning methods.

Stages: dense + early-GMP training, late-GMP training, one-shot global pruning + finetuning, PIEs (with Q-Score
and UMAP), prediction depth, and the report. Every stage skips the work already on disk, so a rerun after a crash or a
change picks up where it stopped; the log says which stage ran, what it skipped and how long it took.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import pandas as pd

from common import preflight
from common.cli import UsageError, check_device, parse_flags
from common.config import AT_LEAST_ONE, DISTINCT, NON_NEGATIVE, check_fields, help_field
from common.io import write_csv
from common.log import setup_logging
from common.paths import Paths
from common.studies.corti2022.config import preset_config

log = logging.getLogger("prune")
METHODS = ("supervised", "supcon")


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
    list: bool = help_field(False, "print every population on disk under --output_root (seeds, recipe fingerprints, "
                                   "accuracy, provenance), write one row per model to logs/models.csv, and exit")
    smoke: bool = help_field(False, "check the whole pipeline in minutes before committing GPU-days: every stage of "
                                    "the preset with each training phase cut to about --smoke_steps steps on a "
                                    "--smoke_images-image training subset (batch sizes capped by it, learning-rate "
                                    "milestones and GMP windows scaled), everything else as the preset resolves it; "
                                    "written under <output_root>/smoke/")
    smoke_steps: int = help_field(4, "optimizer steps per training phase of a --smoke run (at least)")
    smoke_images: int = help_field(256, "training images of a --smoke run (a seeded, class-balanced subset)")


# prediction_depth_models: 3, the fewest from which the depth gap's t interval gives a verdict (common.metrics.verdicts)
PRESETS = {
    "demo": dict(models_number=3, pruning_percentages=(0.5, 0.9), prediction_depth_models=3),
    "paper": dict(models_number=30, pruning_percentages=(0.3, 0.5, 0.7, 0.9, 0.95), prediction_depth_models=5),
    # evaluating 10,000 test images every epoch would cost a third of the training time: only at the end
    "study": dict(models_number=5, pruning_percentages=(0.5, 0.9), prediction_depth_models=3, eval_every=1000),
}
STAGES = ("train_gmp_early", "train_gmp_late", "finetune", "pies", "depth", "report")


# ---- --smoke: the preset's recipes cut to a few steps per phase -----------------------------------------

def smoke_schedule(batch: int, study: StudyConfig) -> tuple[int, int]:
    """(epochs, batch) that run at least `smoke_steps` steps on `smoke_images` images: the batch capped by the
    subset, the epochs as few as reach the steps."""
    batch = min(batch, study.smoke_images)
    return -(-study.smoke_steps // max(1, study.smoke_images // batch)), batch


def scaled_milestones(milestones, epochs: int, new_epochs: int) -> list[str]:
    """Milestones at the same fractions of the shortened run (merged where they meet, never before epoch 1)."""
    return [str(m) for m in sorted({max(1, round(m * new_epochs / epochs)) for m in milestones})]


def smoke_training_flags(study: StudyConfig, method: str) -> list[str]:
    recipe = preset_config(method, study.preset)
    epochs, batch = smoke_schedule(recipe.batch_size, study)
    flags = ["--train_subset", str(study.smoke_images), "--epochs", str(epochs), "--batch_size", str(batch),
             "--lr_milestones", *scaled_milestones(recipe.lr_milestones, recipe.epochs, epochs)]
    if method == "supcon":
        head_epochs, head_batch = smoke_schedule(recipe.batch_size_head, study)
        flags += ["--head_epochs", str(head_epochs), "--batch_size_head", str(head_batch), "--head_milestones",
                  *scaled_milestones(recipe.head_milestones, recipe.head_epochs, head_epochs)]
    return flags


def smoke_finetune_flags(study: StudyConfig) -> list[str]:
    from common.studies.corti2022.finetune import FinetuneConfig, PRESETS as FINETUNE_PRESETS

    recipe = replace(FinetuneConfig(), **FINETUNE_PRESETS[study.preset])
    epochs, batch = smoke_schedule(recipe.batch_size, study)
    return ["--train_subset", str(study.smoke_images), "--epochs", str(epochs), "--batch_size", str(batch)]


def stage_commands(study: StudyConfig, method: str) -> dict[str, tuple]:
    """{stage: (module main, argv)} for one learning method: the same commands a user would type."""
    from common.studies.corti2022 import depth, finetune, pies, training

    common = ["--preset", study.preset, "--cuda_device", str(study.cuda_device), "--data_dir", study.data_dir]
    if study.output_root:
        common += ["--output_root", study.output_root]
    quiet = [] if study.progress else ["--no-progress"]
    sparsities = ",".join(f"{s:g}" for s in study.pruning_percentages)
    seeds = ["--index_start", "0", "--index_end", str(study.models_number - 1),
             "--population_size", str(study.population_size), "--eval_every", str(study.eval_every)]
    k = ["--models_number", str(study.models_number)]
    train = smoke_training_flags(study, method) if study.smoke else []
    tune = smoke_finetune_flags(study) if study.smoke else []
    return {
        "train_gmp_early": (training.main, common + quiet + seeds + train + ["--pruning_percentages",
                                                                                f"0.0,{sparsities}",
                                                                                "--gmp_schedule", "early"]),
        "train_gmp_late": (training.main, common + quiet + seeds + train + ["--pruning_percentages", sparsities,
                                                                               "--gmp_schedule", "late"]),
        "finetune": (finetune.main, common + quiet + k + tune + ["--pruning_percentages", sparsities,
                                                                     "--population_size", str(study.population_size),
                                                                     "--eval_every", str(study.eval_every)]),
        # UMAP draws model 0 of each population, so one PIE pass with all K models serves both
        "pies": (pies.main, common + k + ["--plot_q_score", "--plot_umap"]),
        "depth": (depth.main, common + k + ["--prediction_depth_models", str(study.prediction_depth_models)]),
    }


def parse(argv=None) -> StudyConfig:
    presets = {name: {**values, "preset": name} for name, values in PRESETS.items()}
    [given] = parse_flags("reproduce.py", __doc__, argv, StudyConfig, presets=presets)
    study = replace(StudyConfig(), **{**PRESETS[given.get("preset", "demo")], **given})
    if study.smoke:
        study = replace(study, output_root=str(Paths.at(study.output_root).smoke().root))
    unknown = [s for s in study.stages if s not in STAGES]
    if unknown:
        raise UsageError(f"--stages {unknown}: choose from {', '.join(STAGES)}")
    if study.models_number < 2:
        raise UsageError(f"--models_number {study.models_number}: PIEs need populations of at least 2 models")
    bad = [s for s in study.pruning_percentages if not 0 < s < 1]
    if bad or not study.pruning_percentages:
        raise UsageError(f"--pruning_percentages {bad or 'is empty'}: sparsities must lie in (0, 1)")
    check_fields(study, dict(pruning_percentages=DISTINCT, population_size=NON_NEGATIVE,
                             prediction_depth_models=AT_LEAST_ONE, eval_every=AT_LEAST_ONE,
                             smoke_steps=AT_LEAST_ONE, smoke_images=AT_LEAST_ONE))
    check_device(study.cuda_device)
    return study


def list_models(paths: Paths) -> None:
    """`reproduce.py --list`: the populations on disk, printed; the models, to logs/models.csv."""
    from common.inventory import models_table, populations_table

    models = models_table(paths)
    if models.empty:
        print(f"no models under {paths.models}")
        return None
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.max_columns", None):
        print(populations_table(models).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    write_csv(models, paths.models_csv())
    bad = int((models["provenance"] != "ok").sum())
    print(f"{len(models)} models; {bad} not ok (see the provenance column); one row per model: {paths.models_csv()}")
    return None


SCRIPTS = {"train_gmp_early": "training.py", "train_gmp_late": "training.py", "finetune": "pruning_finetune.py",
           "pies": "pie_kmodels_detection.py", "depth": "prediction_depth.py"}


def plan(argv=None) -> tuple[list, Paths]:
    """The study as stages of tasks for a launcher (common.launch): each training stage's populations (a method x a
    chunk of --population_size seeds, 8 when it is 0) as tasks, then finetuning, PIEs and depth per method, then
    the report. -> (stages, the output paths)."""
    from common.cli import script_prefix
    from common.launch import Stage, Task, command_line

    argv = list(argv or [])
    study = parse(argv)
    size = study.population_size or 8
    stages = []
    for name in STAGES:
        if name not in (study.stages or STAGES) or name == "report":
            continue
        stage = Stage(name)
        for method in METHODS:
            run, stage_argv = stage_commands(study, method)[name]
            script = f"{script_prefix(method)}_{SCRIPTS[name]}"
            chunks = [(a, min(a + size, study.models_number) - 1) for a in range(0, study.models_number, size)] \
                if name.startswith("train") else [None]
            for chunk in chunks:
                task_argv = stage_argv if chunk is None else _with_seeds(stage_argv, *chunk)
                label = f"{method} {name}" + ("" if chunk is None else f" seeds {chunk[0]}-{chunk[1]}")
                stage.tasks.append(Task(label, run, (method, task_argv), command_line(script, task_argv)))
        stages.append(stage)
    if "report" in (study.stages or STAGES):
        report_argv = _without(argv, "--stages") + ["--stages", "report"]
        stages.append(Stage("report", [Task("report", main, (report_argv,), command_line("reproduce.py", report_argv))]))
    return stages, Paths.at(study.output_root)


def _with_seeds(argv: list[str], first: int, last: int) -> list[str]:
    out = list(argv)
    out[out.index("--index_start") + 1], out[out.index("--index_end") + 1] = str(first), str(last)
    return out


def _without(argv: list[str], flag: str) -> list[str]:
    """argv without `flag` and the values after it."""
    out, skipping = [], False
    for part in argv:
        if part.startswith("--"):
            skipping = part == flag
        if not skipping:
            out.append(part)
    return out


def main(argv=None):
    from common.studies.corti2022.report import write_report

    study = parse(argv)
    paths = Paths.at(study.output_root)
    if study.list:
        return list_models(paths)
    dataset = preset_config("supervised", study.preset).dataset
    wanted = study.stages or STAGES
    timings, failed = [], 0
    for name in STAGES:
        if name not in wanted or name == "report":
            continue
        for method in METHODS:
            run, argv_stage = stage_commands(study, method)[name]
            started = time.time()
            result = run(method, argv_stage)
            setup_logging(paths.log_file(dataset, method, "reproduce"))  # stages reset the logger
            seconds = time.time() - started
            did = f"{len(result)} models trained" if isinstance(result, list) else "done"
            failed += sum(bool(r.get("failed")) for r in result) if isinstance(result, list) else 0
            if isinstance(result, list) and not result:
                did = "skipped: everything already on disk"
            timings.append(dict(stage=name, method=method, seconds=round(seconds, 1), outcome=did))
            log.info("stage %s (%s): %s in %.1fs", name, method, did, seconds)
    report = None
    if "report" in wanted:
        preflight.check_outputs([paths.pies / dataset, paths.log_dir(dataset, METHODS[0])], preflight.ANALYSIS_BYTES)
        if not timings:  # only the report: no stage has opened the log yet
            setup_logging(paths.log_file(dataset, METHODS[0], "reproduce"))
        report = write_report(paths, dataset, timings)
    total = sum(t["seconds"] for t in timings)
    log.info("study finished in %.1fs%s", total, f"; report: {report}" if report else "")
    if failed:
        log.warning("%d models failed (non-finite loss) and are left out of every analysis: see the training logs",
                    failed)
    return report
