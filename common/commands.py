"""The commands that make a population, derived from the registry of pruning names (common.spec.PRUNINGS): every
"train it with …" message of the toolkit is built here."""
from __future__ import annotations

from common.cli import script_prefix
from common.spec import PRUNINGS, ModelSpec

SCRIPTS = {"training": "training.py", "finetune": "pruning_finetune.py"}


def script_for(spec_or_method, pruning: str | None = None) -> str:
    """`sup_training.py`, `clr_pruning_finetune.py`, …: the paired script that makes this pruning."""
    method, pruning = (spec_or_method.method, spec_or_method.pruning) if isinstance(spec_or_method, ModelSpec) \
        else (spec_or_method, pruning)
    return f"{script_prefix(method)}_{SCRIPTS[PRUNINGS[pruning].made_by]}"


def population_command(method: str, pruning: str, sparsity: float, flags: str = "") -> str:
    """The script and flags that make a population (reruns skip its finished models); `flags` go right after
    the script name (e.g. ' --preset demo')."""
    made = PRUNINGS[pruning]
    extra = f" {made.flags}" if made.flags else ""
    return f"{script_for(method, pruning)}{flags}{extra} --pruning_percentages {sparsity:g}"


def preset_flags(preset: str, method: str, dataset: str, arch: str) -> str:
    """' --preset P' plus --dataset/--arch where they differ from what that preset trains."""
    from common.studies.corti2022.config import preset_config  # the presets are the study's

    recipe = preset_config(method, preset)
    given = dict(dataset=dataset, arch=arch)
    return f" --preset {preset}" + "".join(f" --{k} {v}" for k, v in given.items() if v != getattr(recipe, k))


def retrain_command(spec: ModelSpec) -> str:
    """The command that trains `spec` again (reruns skip finished models, so it trains only the missing one),
    under the preset of its dataset (demo for digits); add the recipe flags its population was trained with."""
    preset = "demo" if spec.dataset == "digits" else "paper"
    flags = preset_flags(preset, spec.method, spec.dataset, spec.arch)
    seeds = (f" --models_number {spec.seed + 1}" if PRUNINGS[spec.pruning].made_by == "finetune"
             else f" --index_start {spec.seed} --index_end {spec.seed}")
    return f"python {population_command(spec.method, spec.pruning, spec.sparsity, flags)}{seeds}"
