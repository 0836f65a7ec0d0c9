"""The commands that make a population, derived from the registry of pruning names (common.spec.PRUNINGS): every
"train it with …" message of the toolkit is built here, complete: the preset, the recipe flags that differ from
it (read from the models already on disk), the seeds and the output root, so that pasting it makes exactly the
models that are missing."""
from __future__ import annotations

from common.cli import script_prefix
from common.recipe import plain
from common.spec import DEFAULT_STUDY, PRUNINGS, ModelSpec

SCRIPTS = {"training": "training.py", "finetune": "pruning_finetune.py"}
IDENTITY = ("method", "dataset", "arch")  # given by the script, --dataset and --arch, never as recipe flags


def script_for(spec_or_method, pruning: str | None = None) -> str:
    """`sup_training.py`, `clr_pruning_finetune.py`, …: the paired script that makes this pruning."""
    method, pruning = (spec_or_method.method, spec_or_method.pruning) if isinstance(spec_or_method, ModelSpec) \
        else (spec_or_method, pruning)
    return f"{script_prefix(method)}_{SCRIPTS[PRUNINGS[pruning].made_by]}"


def preset_for(dataset: str) -> str:
    """The preset that trains on a dataset by default (digits: demo, fashion_mnist: study)."""
    return {"digits": "demo", "fashion_mnist": "study"}.get(dataset, "paper")


def preset_flags(preset: str, method: str, dataset: str, arch: str) -> str:
    """' --preset P' plus --dataset/--arch where they differ from what that preset trains."""
    from common.studies.corti2022.config import preset_config  # the presets are the study's

    recipe = preset_config(method, preset)
    given = dict(dataset=dataset, arch=arch)
    return f" --preset {preset}" + "".join(f" --{k} {v}" for k, v in given.items() if v != getattr(recipe, k))


def preset_recipe(method: str, pruning: str, sparsity: float, preset: str) -> dict:
    """What a preset's recipe is for a model of this pruning: the baseline that recipe flags are told against."""
    from common.studies.corti2022.config import preset_config
    from common.studies.corti2022.finetune import preset_finetune

    if PRUNINGS[pruning].made_by == "finetune":
        return preset_finetune(method, preset).recipe()
    return preset_config(method, preset).recipe(sparsity)


def recipe_flags(recipe: dict, baseline: dict) -> str:
    """' --epochs 2 --no-vertical_flip …': the flags that turn `baseline` into `recipe`."""
    recipe, baseline = plain(recipe), plain(baseline)
    out = []
    for key, value in recipe.items():
        if key in IDENTITY or value is None or baseline.get(key) == value:
            continue
        if isinstance(value, bool):
            out.append(f" --{key}" if value else f" --no-{key}")
        elif isinstance(value, list):
            out.append(f" --{key}" + (f" {','.join(map(str, value))}" if value else ""))
        else:
            out.append(f" --{key} {value}")
    return "".join(out)


def population_command(method: str, pruning: str, sparsity: float, flags: str = "") -> str:
    """The script and flags that make a population (reruns skip its finished models); `flags` go right after
    the script name (e.g. ' --preset demo'); the pruning's own flags are added unless `flags` set them."""
    made = [f" {flag}" for flag in _flag_groups(PRUNINGS[pruning].flags) if f"{flag.split()[0]} " not in flags + " "]
    return f"{script_for(method, pruning)}{flags}{''.join(made)} --pruning_percentages {sparsity:g}"


def _flag_groups(flags: str) -> list[str]:
    """'--a x --b y' -> ['--a x', '--b y']."""
    return [f"--{part.strip()}" for part in flags.split("--") if part.strip()]


def make_command(method: str, pruning: str, sparsity: float, dataset: str, arch: str, seeds: list[int],
                 preset: str | None = None, recipe: dict | None = None, root_flag: str = "") -> str:
    """The complete command that makes the models of `seeds` of one population: the preset (the dataset's own
    unless given), the recipe flags that differ from it, the seeds and the output root."""
    preset = preset or preset_for(dataset)
    flags = preset_flags(preset, method, dataset, arch)
    if recipe:
        flags += recipe_flags(recipe, preset_recipe(method, pruning, sparsity, preset))
    if PRUNINGS[pruning].made_by == "finetune":
        seed_flags = f" --models_number {max(seeds) + 1}"
    else:
        seed_flags = f" --index_start {min(seeds)} --index_end {max(seeds)}"
    return f"python {population_command(method, pruning, sparsity, flags)}{seed_flags}{root_flag}"


def retrain_command(spec: ModelSpec, recipe: dict | None = None, root_flag: str = "") -> str:
    """The command that trains `spec` again (reruns skip finished models, so it trains only the missing one)
    with `recipe` (its population's, when known) under the preset of its dataset."""
    if spec.study != DEFAULT_STUDY:
        return study_command(spec, root_flag)
    return make_command(spec.method, spec.pruning, spec.sparsity, spec.dataset, spec.arch, [spec.seed],
                        recipe=recipe, root_flag=root_flag)


def study_command(spec: ModelSpec, root_flag: str = "") -> str:
    """The command that makes a model of another study again: that study's entry point under its dataset's preset
    for that seed and objective (it skips what is finished, so it makes only what is missing)."""
    objective = dict(spec.knobs).get("objective", spec.method)
    return (f"python studies/{spec.study}.py --preset {preset_for(spec.dataset)} --objective {objective} "
            f"--dataset {spec.dataset} --arch {spec.arch} --index_start {spec.seed} --index_end {spec.seed}{root_flag}")
