"""`python -m common.studies.tickets.readme [--preset demo|study] [--minutes M] [--page docs/tickets.md]`: the
tickets page's figures and claims of a preset's run, regenerated from that run's outputs.

After `python reproduce.py --study tickets --preset demo` (or study), this copies the report's figures into
figures/ (tickets_<name>_<preset>.png) and rewrites the preset's block of the page (between its two markers): what
ran (seeds, densities, test-set size, read from the preset and the dataset), where (device, threads, torch, from a
checkpoint), the dense label networks' accuracy, and every claim of the report with n per side, its 95 % paired
interval, its verdict and the same relative to level 0. No number in that block is typed by hand.
"""
from __future__ import annotations

import argparse
import shutil

import pandas as pd

from common import checkpoint as ckpt
from common.cli import run_main
from common.errors import UsageError
from common.data import load_dataset
from common.io import write_text
from common.paths import REPO_ROOT, Paths
from common.studies.tickets.claims import SHARED
from common.studies.tickets.config import (PRESET_OBJECTIVES, RUN_PRESETS, STUDY, TicketsRun, level_density,
                                           preset_config)
from common.studies.tickets.report import claims_markdown
from common.zoo import finished_specs

FIGURES = ("tickets", "transfer", "pruning_time", "layerwise", "few_labels", "natural_sparsity")


def markers(preset: str) -> tuple[str, str]:
    return (f"<!-- tickets {preset} figures: written by `python -m common.studies.tickets.readme --preset {preset}`; "
            "never edit by hand -->", f"<!-- end of tickets {preset} figures -->")


def where_measured(paths: Paths, dataset: str) -> str:
    """'2 threads on cpu (x86_64), torch 2.15.0': from the runtime a re-trained ticket of the run recorded."""
    specs = finished_specs(paths, dataset, "supervised", study=STUDY)
    if not specs:
        raise UsageError(f"no tickets models under {paths.model_dir(dataset, 'supervised', STUDY)}: run that preset "
                         "first")
    meta = ckpt.read_meta(paths.checkpoint(specs[0]))
    runtime, versions = meta.get("runtime", {}), meta.get("versions", {})
    threads = runtime.get('threads', '?')
    return (f"{threads} thread{'' if threads == 1 else 's'} on {runtime.get('device', '?')} "
            f"({runtime.get('device_name') or 'unknown processor'}), torch {versions.get('torch', '?')}")


def replace_block(text: str, preset: str, new: str) -> str:
    """`text` with the preset's block (from its begin marker to its end marker) replaced by `new`."""
    begin, end = markers(preset)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise UsageError(f"the page lacks the markers {begin!r} … {end!r}: put them where the figures go")
    return text[:start] + new + text[stop + len(end):]


def what_ran(preset: str, data_dir: str = "") -> str:
    """'8 seeds, WRN-10-1 on digits (1,437 training images at 8×8, 360 test images), supervised, rotnet and
    exemplar, 0.36 of the remaining weights per level: 6.9 % at level 6, tickets re-trained at levels 0, 3, 6'."""
    cfg = preset_config(preset)
    run = TicketsRun(**RUN_PRESETS[preset])
    data = load_dataset(cfg.dataset, data_dir).train_subset(cfg.train_subset).resized(cfg.image_size)
    retrained = ", ".join(map(str, run.retrain_levels)) if run.retrain_levels else "every level"
    objectives = PRESET_OBJECTIVES[preset]
    return (f"{run.index_end - run.index_start + 1} seeds, {cfg.arch} on {cfg.dataset} ({len(data.train_labels):,} "
            f"training images at {data.image_size}×{data.image_size}, {len(data.test_labels):,} test images), "
            f"{', '.join(objectives[:-1])} and {objectives[-1]}, {cfg.epochs} epochs per training, "
            f"{cfg.pruning_rate:g} of the remaining weights per level: "
            f"{100 * level_density(cfg.pruning_rate, run.levels):.1f} % at level {run.levels}, rewind {cfg.rewind}, "
            f"tickets re-trained at levels {retrained}")


def dense_line(paths: Paths, dataset: str) -> str:
    """The dense networks re-trained on labels (level 0): the shared random initialisation and the label ticket."""
    summary = pd.read_csv(paths.study_file(dataset, STUDY, "summary.csv"))
    dense = summary[(summary["level"] == 0) & (summary["layers"] == "all")]
    parts = []
    for name, rows in (("from a random initialisation", dense[dense["objective"] == SHARED]),
                       ("from the supervised rewind point", dense[(dense["objective"] == "supervised")
                                                                 & (dense["init"] == "rewind")])):
        if len(rows):
            accuracy = 100 * rows["test_accuracy"]
            parts.append(f"{name} {accuracy.mean():.1f} ± {accuracy.std():.1f} %")
    return f"Dense networks trained on labels: {'; '.join(parts)} (mean ± std over seeds)." if parts else ""


def block(paths: Paths, preset: str, minutes: str = "", data_dir: str = "") -> str:
    dataset = preset_config(preset).dataset
    claims_path = paths.study_file(dataset, STUDY, "claims.csv")
    if not claims_path.is_file():
        raise UsageError(f"no tickets report under {claims_path.parent}: run `python reproduce.py --study tickets "
                         f"--preset {preset}` first")
    begin, end = markers(preset)
    timing = f" in {minutes} min" if minutes else ""
    return "\n".join([
        begin,
        f"Measured by `python reproduce.py --study tickets --preset {preset}`{timing} ({where_measured(paths, dataset)}"
        f"; {what_ran(preset, data_dir)}). {dense_line(paths, dataset)} Every claim: the mean of per-seed "
        "differences in percentage points, its 95 % paired t interval over seeds and verdict, raw and relative to "
        "the same difference at level 0 (the head start); n pairs of seeds per claim:",
        "",
        claims_markdown(pd.read_csv(claims_path)),
        end,
    ])


def copy_figures(paths: Paths, dataset: str, folder, preset: str) -> list:
    copied = []
    for name in FIGURES:
        source = paths.study_file(dataset, STUDY, f"{name}.png")
        if source.is_file():
            target = folder / f"tickets_{name}_{preset}.png" if name != "tickets" else folder / f"tickets_{preset}.png"
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(prog="python -m common.studies.tickets.readme",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=("demo", "study"), help="whose figures (default: demo)")
    parser.add_argument("--output_root", default="", help="where the run wrote its outputs (default: the "
                                                          "repository folder)")
    parser.add_argument("--page", default="docs/tickets.md", help="the page to rewrite (relative to the "
                                                                   "repository, or absolute)")
    parser.add_argument("--minutes", default="", help="the run's measured wall time in minutes, e.g. '13.2 (2 "
                                                      "cores)'")
    parser.add_argument("--data_dir", default="", help="where the datasets are (default: the usual places)")
    args = parser.parse_args(argv)
    paths = Paths.at(args.output_root)
    page = REPO_ROOT.joinpath(args.page)
    if not page.is_file():
        raise UsageError(f"--page {args.page}: no such file; give the page that holds the tickets blocks")
    text = replace_block(page.read_text(), args.preset, block(paths, args.preset, args.minutes, args.data_dir))
    copied = copy_figures(paths, preset_config(args.preset).dataset, REPO_ROOT / "figures", args.preset)
    write_text(page, text)
    print(f"rewrote the tickets {args.preset} block of {page} and copied {len(copied)} figures to figures/")
    return []


if __name__ == "__main__":
    run_main(main)
