"""Where a preset's wall time goes: every stage of a study's preset run here, task by task as `reproduce.py` plans
them, with the wall time of each stage split into phases (training steps, augmentation, evaluation, BatchNorm
resets, inference, k-NN, CKA, interpolation, Q-Score, UMAP, plots, checkpoint and table I/O, dataset loading), so
that the next optimisation is chosen from data.

The engine times its own phases (common.engine.timing: training steps, augmentation, GMP pruning, evaluation,
inference, BatchNorm reset, checkpoint); the analyses' functions listed in PROBES are timed here by wrapping them
wherever the loaded modules refer to them (the code they measure is left as it is). Each phase holds its own time
only (a phase inside another is subtracted from it); `other` is a stage's wall time outside every phase (model
set-up, metrics tables, logging, Python). Results are written as JSON (`--json`, merged with what the file already
holds, so a preset can be profiled stage by stage in separate commands) and printed as a table; `--report` prints
the table of saved JSON files (files of one study and preset, such as one per group of objectives, added up
stage by stage).

  python bench/profile_presets.py --study corti2022 --preset study --output_root /tmp/profile --json study.json
  python bench/profile_presets.py --study corti2022 --preset study --stages train_gmp_early --json study.json ...
  python bench/profile_presets.py --report study.json tickets_demo.json
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from functools import wraps
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_training import cpu_model  # noqa: E402
from common.engine.timing import TIMINGS, timed  # noqa: E402
from common.launch import Stage  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402
from common.studies import STUDIES  # noqa: E402

PROBES = {  # phase -> functions ('module:name') timed from outside
    "k-NN": ["common.metrics.knn:knn_predict", "common.metrics.knn:knn_predict_layers",
             "common.metrics.knn:weighted_knn_predict"],
    "CKA": ["common.metrics.cka:linear_cka"],
    "interpolation": ["common.studies.three_regime.grid:interpolate"],
    "Q-Score": ["common.metrics.qscore:representation_scores"],
    "UMAP": ["common.studies.corti2022.pies:umap_embedding"],
    "checkpoint I/O": ["common.checkpoint:save_model", "common.checkpoint:load_model", "common.checkpoint:read_meta",
                       "common.checkpoint:save_state", "common.checkpoint:load_state"],
    "table I/O": ["common.io:write_csv", "common.io:upsert_csv"],
    "dataset loading": ["common.data.datasets:load_dataset"],
    "plots": ["common.plots:save_figure"],
}
PLOT_MODULES = ("common.plots.pies", "common.plots.depth", "common.plots.history", "common.plots.phase",
                "common.plots.tickets")
COLUMNS = ("training steps", "augmentation", "GMP pruning", "evaluation", "BatchNorm reset", "inference", "k-NN",
           "CKA", "interpolation", "Q-Score", "UMAP", "plots", "checkpoint", "checkpoint I/O", "table I/O",
           "dataset loading")


def instrument(phase: str, target: str) -> bool:
    """Time `target` ('module:function') as `phase` wherever a loaded module of this project refers to it."""
    module_name, name = target.split(":")
    try:
        module = importlib.import_module(module_name)
        original = getattr(module, name)
    except (ImportError, AttributeError):
        print(f"note: {target} not found, its time counts as other", file=sys.stderr)
        return False

    @wraps(original)
    def wrapper(*args, **kwargs):
        with timed(phase):
            return original(*args, **kwargs)
    for loaded in list(sys.modules.values()):
        if getattr(loaded, "__name__", "").startswith(("common", "studies")):
            for attribute, value in list(vars(loaded).items()):
                if value is original:
                    setattr(loaded, attribute, wrapper)
    return True


def instrument_all() -> None:
    for module in PLOT_MODULES:  # every plot_* function of the plotting modules
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            continue
        PROBES["plots"] += [f"{module}:{name}" for name in vars(loaded) if name.startswith("plot_")]
    for phase, targets in PROBES.items():
        for target in targets:
            instrument(phase, target)


def planned(study: str, argv: list[str]) -> list[Stage]:
    """The study's stages for these reproduce.py flags, each as a launcher's tasks (common.study.Study.tasks)."""
    return STUDIES[study].tasks(STUDIES[study].parse_argv(argv, prog="profile_presets.py"))


def profile(study: str, argv: list[str], stages: list[str]) -> list[dict]:
    """Run the study's planned stages (those in `stages`, all when empty) here, task by task as a launcher runs
    them; -> one record per stage."""
    instrument_all()
    TIMINGS.synchronize = True
    records = []
    for stage in planned(study, argv):
        if stages and stage.name not in stages:
            continue
        before, started = TIMINGS.snapshot(), time.perf_counter()
        for task in stage.tasks:
            print(f"stage {stage.name}: {task.label}", file=sys.stderr, flush=True)
            task.function(*task.args)
        wall = time.perf_counter() - started
        phases = TIMINGS.since(before)
        records.append(dict(stage=stage.name, tasks=len(stage.tasks), wall=round(wall, 2),
                            phases={k: round(v, 2) for k, v in phases.items()},
                            other=round(wall - sum(phases.values()), 2)))
    return records


def merged(path: Path, header: dict, records: list[dict]) -> dict:
    """The JSON file's content with these stages' records replacing any earlier ones of the same stage."""
    saved = json.loads(path.read_text()) if path.is_file() else dict(header, stages=[])
    names = {r["stage"] for r in records}
    saved["stages"] = [r for r in saved["stages"] if r["stage"] not in names] + records
    return saved


def combined(profiles: list[dict]) -> list[dict]:
    """One profile per (study, preset): the stages of files that profiled parts of one preset (say, its objectives
    in separate commands) added up, stage by stage."""
    out: dict = {}
    for p in profiles:
        profile = out.setdefault((p["study"], p["preset"]), dict(p, stages=[]))
        stages = {r["stage"]: r for r in profile["stages"]}
        for r in p["stages"]:
            if r["stage"] not in stages:
                profile["stages"].append(dict(r, phases=dict(r["phases"])))
                continue
            into = stages[r["stage"]]
            for field in ("tasks", "wall", "other"):
                into[field] = round(into[field] + r[field], 2)
            for phase, seconds in r["phases"].items():
                into["phases"][phase] = round(into["phases"].get(phase, 0.0) + seconds, 2)
    return list(out.values())


def table(profiles: list[dict]) -> str:
    """Markdown: a row per stage and a total per preset, seconds per phase (the phases any stage spent time in)."""
    used = [c for c in COLUMNS if any(r["phases"].get(c) for p in profiles for r in p["stages"])]
    extra = sorted({k for p in profiles for r in p["stages"] for k in r["phases"]} - set(COLUMNS))
    columns = used + extra
    lines = ["| preset | stage | wall s | " + " | ".join(columns) + " | other |",
             "|---" * (len(columns) + 4) + "|"]
    for p in profiles:
        name = f"{p['study']} {p['preset']}"
        for r in p["stages"]:
            lines.append(f"| {name} | {r['stage']} | {r['wall']:.0f} | "
                         + " | ".join(_cell(r["phases"].get(c, 0.0)) for c in columns) + f" | {_cell(r['other'])} |")
        wall = sum(r["wall"] for r in p["stages"])
        totals = [sum(r["phases"].get(c, 0.0) for r in p["stages"]) for c in columns]
        other = sum(r["other"] for r in p["stages"])
        lines.append(f"| **{name}** | **all** | **{wall:.0f}** | "
                     + " | ".join(f"{_cell(t)} ({t / wall:.0%})" if t else "" for t in totals)
                     + f" | {_cell(other)} ({other / wall:.0%}) |")
    devices = [f"{p['device']}, {p['threads']} thread{'s' * (p['threads'] != 1)}, torch {p['torch']}"
               for p in profiles]
    if len(set(devices)) > 1:  # each preset's own
        devices = [f"{p['study']} {p['preset']}: {device}" for p, device in zip(profiles, devices)]
    return "\n".join(lines) + "\n\nseconds; " + "; ".join(dict.fromkeys(devices))


def _cell(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 1 else ("" if not seconds else "<1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="corti2022", choices=tuple(STUDIES))
    parser.add_argument("--stages", default="", help="comma-separated stage names as the plan names them "
                                                      "(default: all)")
    parser.add_argument("--json", default="", help="merge the stages' records into this JSON file")
    parser.add_argument("--report", nargs="*", default=None, help="print the table of these JSON files and exit")
    args, study_argv = parser.parse_known_args()
    if args.report is not None:
        missing = [p for p in args.report if not Path(p).is_file()]
        if missing:
            parser.error(f"--report {missing[0]}: no such file (the --json of an earlier run)")
        print(table(combined([json.loads(Path(p).read_text()) for p in args.report])))
        return
    preset = study_argv[study_argv.index("--preset") + 1] if "--preset" in study_argv else "demo"
    header = dict(study=args.study, preset=preset, argv=study_argv, device=f"CPU {cpu_model()}" if not
                  torch.cuda.is_available() else torch.cuda.get_device_name(), threads=torch.get_num_threads(),
                  torch=torch.__version__)
    records = profile(args.study, study_argv, [s for s in args.stages.split(",") if s])
    result = merged(Path(args.json), header, records) if args.json else dict(header, stages=records)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(table([result]))


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
