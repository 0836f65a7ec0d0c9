"""`python -m common.studies.corti2022.readme [--preset demo|study]`: the README's figures of a preset's run,
regenerated from that run's outputs.

After `./setup.sh demo` (or `python reproduce.py --preset study`), this copies the headline figures into figures/
and rewrites the preset's block of README.md (between its two markers): the claims of the report as measured,
with their intervals, the test accuracies, and where it was measured (device, threads and torch version, read
from the checkpoints). No number in that block is typed by hand.
"""
from __future__ import annotations

import argparse

import pandas as pd

from common import checkpoint as ckpt
from common.cli import run_main
from common.errors import UsageError
from common.io import write_text
from common.paths import REPO_ROOT
from common.studies.corti2022.paths import CortiPaths
from common.studies.corti2022.report import copy_headline_figures, measured_claims
from common.zoo import finished_specs

PRESETS = {  # preset -> (dataset, what was run)
    "demo": ("digits", "3 models per configuration, sparsities 0.5 and 0.9, WRN-10-1 on 8×8 digits, 360 test digits"),
    "study": ("fashion_mnist", "5 models per configuration, sparsities 0.5 and 0.9, WRN-10-1 on Fashion-MNIST "
                               "trained on a class-balanced 5,000-image subset, the full 10,000-image test set"),
}


def markers(preset: str) -> tuple[str, str]:
    return (f"<!-- {preset} figures: written by `python -m common.studies.corti2022.readme --preset {preset}`; never "
            f"edit by hand -->", f"<!-- end of {preset} figures -->")


def where_measured(paths: CortiPaths, dataset: str) -> str:
    """'2 threads on cpu (x86_64), torch 2.15.0': from the runtime a checkpoint of the run recorded."""
    specs = finished_specs(paths, dataset, "supervised")
    if not specs:
        raise UsageError(f"no {dataset} models under {paths.models / dataset}: run that preset first")
    meta = ckpt.read_meta(paths.checkpoint(specs[0]))
    runtime, versions = meta.get("runtime", {}), meta.get("versions", {})
    return (f"{runtime.get('threads', '?')} threads on {runtime.get('device', '?')} "
            f"({runtime.get('device_name') or 'unknown processor'}), torch {versions.get('torch', '?')}")


def accuracy_line(paths: CortiPaths, dataset: str) -> str:
    """'dense test accuracy: supervised 84.1 ± 0.3 %, SupCon 70.2 ± 1.1 % (mean ± std over members)'."""
    parts = []
    for method, name in (("supervised", "supervised"), ("supcon", "SupCon")):
        summary = paths.pie_summary(dataset, method)
        if summary.is_file():
            row = pd.read_csv(summary).iloc[0]
            parts.append(f"{name} {100 * row.dense_accuracy_mean:.1f} ± {100 * row.dense_accuracy_std:.1f} %")
    return f"Dense test accuracy: {', '.join(parts)} (mean ± std over members)." if parts else ""


def block(paths: CortiPaths, preset: str, timing: str = "") -> str:
    """The README's block of a preset: what and where it was measured, accuracies, each claim as measured."""
    dataset, what = PRESETS[preset]
    begin, end = markers(preset)
    ran = f"`python reproduce.py --preset {preset}`" if preset != "demo" else "`./setup.sh demo`"
    return "\n".join([
        begin,
        f"Measured by {ran} ({where_measured(paths, dataset)}; {what}){timing}. {accuracy_line(paths, dataset)} "
        f"The report's claims, each with its 95 % interval, the procedure and seeds behind it and the smallest "
        f"effect it detects at 80 % power (common/metrics/verdicts.py; TOO FEW SEEDS below 3 per side):",
        "",
        *measured_claims(paths, dataset),
        end,
    ])


def replace_block(text: str, preset: str, new: str) -> str:
    """`text` with the preset's block (from its begin marker to its end marker) replaced by `new`."""
    begin, end = markers(preset)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise UsageError(f"README.md lacks the markers {begin!r} … {end!r}: put them where the figures go")
    return text[:start] + new + text[stop + len(end):]


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(prog="python -m common.studies.corti2022.readme",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=tuple(PRESETS), help="whose figures (default: demo)")
    parser.add_argument("--output_root", default="", help="where the run wrote its outputs (default: the "
                                                          "repository folder)")
    parser.add_argument("--readme", default=str(REPO_ROOT / "README.md"), help="the README to rewrite (default: "
                                                                              "the repository's)")
    parser.add_argument("--timing", default="", help="the run's measured wall time, as ' in 52 min' (from its log)")
    args = parser.parse_args(argv)
    paths = CortiPaths.at(args.output_root)
    readme = REPO_ROOT.joinpath(args.readme)
    text = replace_block(readme.read_text(), args.preset, block(paths, args.preset, args.timing))
    copied = copy_headline_figures(paths, PRESETS[args.preset][0], readme.parent / "figures",
                                   prefix="" if args.preset == "demo" else f"{args.preset}_")
    write_text(readme, text)
    print(f"rewrote the {args.preset} figures of {readme} and copied {len(copied)} figures")
    return []


if __name__ == "__main__":
    run_main(main)
