"""Finding and loading the trained models on disk: one population at a time, stacked for batched inference."""
from __future__ import annotations

import logging
from collections import defaultdict

import torch

from common import checkpoint as ckpt
from common.models import build_network
from common.paths import ModelSpec, Paths
from common.population import Population

log = logging.getLogger("prune")


def finished_specs(paths: Paths, dataset: str, method: str, arch: str | None = None) -> list[ModelSpec]:
    """Every finished model of a method on disk (SupCon: those whose classifier file exists), sorted by
    (pruning, sparsity, seed). Unreadable files are skipped with a warning naming them."""
    last_part = "model" if method == "supervised" else "classifier"
    pattern = "*.safetensors" if last_part == "model" else "*_classifier.safetensors"
    specs = []
    for path in paths.model_dir(dataset, method).glob(pattern):
        try:
            spec = ModelSpec(**ckpt.read_meta(path)["spec"])
        except (ckpt.CheckpointError, TypeError, KeyError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if spec.method == method and spec.dataset == dataset and (arch is None or spec.arch == arch):
            if all(p.is_file() for p in paths.checkpoints(spec)):
                specs.append(spec)
    return sorted(specs, key=lambda s: (s.pruning, s.sparsity, s.seed))


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
                    num_classes: int = 10) -> tuple[Population, list[dict]]:
    """Stack `specs` (all of one arch and method) into a Population for batched inference."""
    first = specs[0]
    network = build_network(first.arch, first.method, num_classes, _projection_dim(paths, first))
    states, metas = [], []
    for spec in specs:
        state, _, meta = load_member(paths, spec)
        if first.method == "supcon":  # the projection head may be absent (finetuned encoders drop it)
            state = {**{k: v for k, v in network.state_dict().items() if k.startswith("projection.")}, **state}
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ckpt.CheckpointError(f"{paths.checkpoint(spec, spec.parts[0])} does not fit a {spec.arch} "
                                       f"({str(err).splitlines()[0]}): delete it or retrain it")
        states.append(state)
        metas.append(meta)
    return Population.from_states(network, states, device), metas


def _projection_dim(paths: Paths, spec: ModelSpec) -> int:
    if spec.method != "supcon":
        return 128
    meta = ckpt.read_meta(paths.checkpoint(spec, "encoder"))
    return int(meta.get("config", {}).get("projection_dim", 128))


def _script(spec: ModelSpec) -> str:
    prefix = "sup" if spec.method == "supervised" else "clr"
    return f"{prefix}_pruning_finetune.py" if spec.pruning in ("global", "layerwise", "random") \
        else f"{prefix}_training.py"
