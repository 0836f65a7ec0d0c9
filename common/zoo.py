"""Finding and loading the trained models on disk: one population at a time, stacked for batched inference."""
from __future__ import annotations

import logging
import re
from collections import defaultdict

import torch

from common import checkpoint as ckpt
from common.config import ARCHS, DATASETS
from common.models import build_network
from common.paths import METHOD_DIRS, ModelSpec, Paths
from common.population import Population

log = logging.getLogger("prune")


def finished_specs(paths: Paths, dataset: str, method: str, arch: str | None = None) -> list[ModelSpec]:
    """Every finished model of a method on disk (SupCon: those whose classifier file exists), sorted by
    (pruning, sparsity, seed). A model with an unreadable or truncated file (any part; only headers are read) is
    skipped with a warning naming the file and the command that retrains it."""
    last_part = "model" if method == "supervised" else "classifier"
    pattern = "*.safetensors" if last_part == "model" else "*_classifier.safetensors"
    specs = []
    for path in sorted(paths.model_dir(dataset, method).glob(pattern)):
        try:
            spec = ModelSpec(**ckpt.read_meta(path)["spec"])
        except (ckpt.CheckpointError, TypeError, KeyError) as err:
            log.warning(_unreadable(path, err))
            continue
        if spec.method == method and spec.dataset == dataset and (arch is None or spec.arch == arch):
            if all(p.is_file() for p in paths.checkpoints(spec)) and _parts_readable(paths, spec):
                specs.append(spec)
    return sorted(specs, key=lambda s: (s.pruning, s.sparsity, s.seed))


def _parts_readable(paths: Paths, spec: ModelSpec) -> bool:
    """The headers of a model's other parts (a SupCon encoder) read too; a truncated file fails here already,
    as safetensors checks that the header covers the whole file."""
    for path in paths.checkpoints(spec)[:-1]:
        try:
            ckpt.read_meta(path)
        except ckpt.CheckpointError as err:
            log.warning(_unreadable(path, err))
            return False
    return True


def _unreadable(path, err: Exception) -> str:
    """One warning line: which file is skipped, why, and the command that retrains it."""
    reason = err.__context__ or err  # the library's own words, not the CheckpointError that repeats the path
    spec = spec_from_filename(path.name)
    fix = (f"retrain it with `{retrain_command(spec)}` and the recipe flags its population was trained with"
           if spec else "retrain that model")
    return f"skipping {path}: unreadable or corrupt ({type(reason).__name__}: {reason}); delete it and {fix}"


_NAME = re.compile(rf"(?P<method>supervised|SupCon)_(?P<arch>{'|'.join(ARCHS)})_(?P<dataset>{'|'.join(DATASETS)})_"
                   r"(?P<pruning>dense|gmp_early|gmp_late|gmp_custom|global|layerwise|random)_s(?P<sparsity>[0-9.e+-]+)"
                   r"_seed(?P<seed>\d+)(_encoder|_classifier)?\.safetensors")


def spec_from_filename(name: str) -> ModelSpec | None:
    """The identity of a model from its file name (for a file whose metadata cannot be read), or None."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    method = {v: k for k, v in METHOD_DIRS.items()}[match["method"]]
    return ModelSpec(method, match["arch"], match["dataset"], match["pruning"], float(match["sparsity"]),
                     int(match["seed"]))


ONE_SHOT = ("global", "layerwise", "random")


def population_command(method: str, pruning: str, sparsity: float, flags: str = "") -> str:
    """The script and flags that make a population (reruns skip its finished models); `flags` go right after
    the script name (e.g. ' --preset demo')."""
    prefix = "sup" if method == "supervised" else "clr"
    if pruning in ONE_SHOT:
        return f"{prefix}_pruning_finetune.py{flags} --pruning_method {pruning} --pruning_percentages {sparsity:g}"
    if pruning == "gmp_custom":
        flags += " --begin_step B --end_step E --frequency F"
    elif pruning != "dense":
        flags += f" --gmp_schedule {pruning.removeprefix('gmp_')}"
    return f"{prefix}_training.py{flags} --pruning_percentages {sparsity:g}"


def retrain_command(spec: ModelSpec) -> str:
    """The command that trains `spec` again (reruns skip finished models, so it trains only the missing one),
    under the preset of its dataset (demo for digits); add the recipe flags its population was trained with."""
    from common.config import preset_config

    preset = "demo" if spec.dataset == "digits" else "paper"
    recipe = preset_config(spec.method, preset)
    flags = f" --preset {preset}" + "".join(f" --{k} {getattr(spec, k)}" for k in ("dataset", "arch")
                                            if getattr(spec, k) != getattr(recipe, k))
    seeds = (f" --models_number {spec.seed + 1}" if spec.pruning in ONE_SHOT
             else f" --index_start {spec.seed} --index_end {spec.seed}")
    return f"python {population_command(spec.method, spec.pruning, spec.sparsity, flags)}{seeds}"


def group_populations(specs: list[ModelSpec]) -> dict[tuple, list[ModelSpec]]:
    """{(pruning, sparsity): members sorted by seed}."""
    groups = defaultdict(list)
    for spec in specs:
        groups[(spec.pruning, spec.sparsity)].append(spec)
    return {k: sorted(v, key=lambda s: s.seed) for k, v in sorted(groups.items())}


def load_member(paths: Paths, spec: ModelSpec) -> tuple[dict, dict, dict]:
    """(state dict, masks, metadata) of one model, its SupCon parts merged. A file of another arch, dataset or
    method than its name promises is an error naming it."""
    state, masks, meta = {}, {}, {}
    for part in spec.parts:
        path = paths.checkpoint(spec, part)
        if not path.is_file():
            raise ckpt.CheckpointError(f"{path} is missing: train it with the {_script(spec)} command")
        part_state, part_masks, meta = ckpt.load_model(path)
        stored = meta.get("spec", {})
        for key in ("arch", "dataset", "method"):
            if stored.get(key) != getattr(spec, key):
                raise ckpt.CheckpointError(f"{path} holds a {stored.get(key)} model, not {getattr(spec, key)} "
                                           f"({key}): delete it or retrain it")
        state.update(part_state)
        masks.update(part_masks)
    return state, masks, meta


def load_population(paths: Paths, specs: list[ModelSpec], device: torch.device | str = "cpu",
                    num_classes: int = 10, skip_unreadable: bool = False) -> tuple[Population, list[dict]]:
    """Stack `specs` (all of one arch and method) into a Population for batched inference. A member that cannot
    be read or does not fit is a CheckpointError naming its file; with `skip_unreadable` it is left out with a
    warning that says so (see load_readable_population), and only a population with no member left is an error."""
    return load_readable_population(paths, specs, device, num_classes, skip_unreadable)[:2]


def load_readable_population(paths: Paths, specs: list[ModelSpec], device: torch.device | str = "cpu",
                             num_classes: int = 10, skip_unreadable: bool = True
                             ) -> tuple[Population, list[dict], list[ModelSpec]]:
    """-> (Population, metadata, the specs actually loaded), leaving out unreadable members with a warning."""
    first = specs[0]
    network = None
    states, metas, loaded = [], [], []
    for spec in specs:
        try:
            state, _, meta = load_member(paths, spec)
            if network is None:  # built from the first readable member: the projection size is in its recipe
                projection = int(meta.get("config", {}).get("projection_dim", 128)) if first.method == "supcon" \
                    else 128
                network = build_network(first.arch, first.method, num_classes, projection)
            if first.method == "supcon":  # the projection head may be absent (finetuned encoders drop it)
                state = {**{k: v for k, v in network.state_dict().items() if k.startswith("projection.")}, **state}
            try:
                network.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ckpt.CheckpointError(f"{paths.checkpoint(spec, spec.parts[0])} does not fit a {spec.arch} "
                                           f"({str(err).splitlines()[0]}): delete it or retrain it")
        except ckpt.CheckpointError as err:
            if not skip_unreadable:
                raise
            log.warning("leaving %s out of its population: %s; retrain it with `%s` and the recipe flags its "
                        "population was trained with", spec.name, err, retrain_command(spec))
            continue
        states.append(state)
        metas.append(meta)
        loaded.append(spec)
    if not loaded:
        raise ckpt.CheckpointError(f"no readable model among {', '.join(s.name for s in specs)} under "
                                   f"{paths.model_dir(first.dataset, first.method)}: retrain them")
    return Population.from_states(network, states, device), metas, loaded


def _script(spec: ModelSpec) -> str:
    prefix = "sup" if spec.method == "supervised" else "clr"
    return f"{prefix}_pruning_finetune.py" if spec.pruning in ONE_SHOT \
        else f"{prefix}_training.py"
