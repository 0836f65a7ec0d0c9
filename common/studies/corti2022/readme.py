"""`python -m common.studies.corti2022.readme`: the README's demo figures, regenerated from the demo's outputs.

After `./setup.sh demo`, this copies the headline figures into figures/ and rewrites the block of README.md between
the two markers below: the claims of the report as measured, and where they were measured (device, threads and
torch version, read from the checkpoints). No number in that block is typed by hand.
"""
from __future__ import annotations

import argparse

from common import checkpoint as ckpt
from common.cli import UsageError, run_main
from common.io import write_text
from common.paths import REPO_ROOT, Paths
from common.studies.corti2022.report import copy_headline_figures, measured_claims
from common.zoo import finished_specs

BEGIN = "<!-- demo figures: written by `python -m common.studies.corti2022.readme`; never edit by hand -->"
END = "<!-- end of demo figures -->"
DATASET = "digits"


def where_measured(paths: Paths) -> str:
    """'2 threads on x86_64, torch 2.15.0': from the runtime a demo checkpoint recorded."""
    specs = finished_specs(paths, DATASET, "supervised")
    if not specs:
        raise UsageError(f"no demo models under {paths.models / DATASET}: run `./setup.sh demo` first")
    meta = ckpt.read_meta(paths.checkpoint(specs[0]))
    runtime, versions = meta.get("runtime", {}), meta.get("versions", {})
    return (f"{runtime.get('threads', '?')} threads on {runtime.get('device', '?')} "
            f"({runtime.get('device_name') or 'unknown processor'}), torch {versions.get('torch', '?')}")


def demo_block(paths: Paths) -> str:
    """The README's block: where it was measured, then each claim of the report as measured."""
    claims = measured_claims(paths, DATASET)
    return "\n".join([
        BEGIN,
        f"Measured by `./setup.sh demo` ({where_measured(paths)}; 3 models per configuration, sparsities 0.5 and "
        f"0.9, WRN-10-1 on 8×8 digits, 360 test digits). The report's claims, as measured:",
        "",
        *claims,
        "",
        "Digits with 3 small models per population is a smoke test of the pipeline, not evidence for or against "
        "the paper: run the paper preset for that.",
        END,
    ])


def replace_block(text: str, block: str) -> str:
    """`text` with the part from BEGIN to END replaced by `block`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise UsageError(f"README.md lacks the markers {BEGIN!r} … {END!r}: put them where the figures go")
    return text[:start] + block + text[end + len(END):]


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(prog="python -m common.studies.corti2022.readme",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output_root", default="", help="where the demo wrote its outputs (default: the "
                                                          "repository folder)")
    parser.add_argument("--readme", default=str(REPO_ROOT / "README.md"), help="the README to rewrite (default: "
                                                                              "the repository's)")
    args = parser.parse_args(argv)
    paths = Paths.at(args.output_root)
    readme = REPO_ROOT.joinpath(args.readme)
    text = replace_block(readme.read_text(), demo_block(paths))
    copied = copy_headline_figures(paths, DATASET, readme.parent / "figures")  # the repository's figures/
    write_text(readme, text)
    print(f"rewrote the demo figures of {readme} and copied {len(copied)} figures")
    return []


if __name__ == "__main__":
    run_main(main)
