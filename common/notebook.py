"""Loading a trained model in a notebook: one call from any checkpoint file the toolkit wrote (a Corti et al. model,
either file of a SupCon or pretext model, a tickets or three-regime model) to a ready `nn.Module` with its masks
held and its metadata (docs/api.md)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from common import checkpoint as ckpt
from common.engine.objectives import OBJECTIVES
from common.models import build_network
from common.paths import Paths
from common.pruning.api import HeldMasks, hold_masks
from common.spec import ModelSpec
from common.zoo import load_member


@dataclass
class LoadedModel:
    """A checkpoint as a notebook uses it."""

    network: nn.Module  # common.models.Network in eval mode: network(images) -> logits, network(x, "features"), ...
    masks: dict  # {parameter name: bool mask, True = kept}; {} for a dense model
    meta: dict  # what the checkpoint records: spec, config, recipe, test_accuracy, sparsity, runtime, versions
    spec: ModelSpec  # the model's identity (method, arch, dataset, pruning, sparsity, seed, study, knobs)
    held: HeldMasks | None  # the hold on the masks through training (None when not held); .release() ends it


def load_checkpoint(path: str | Path, hold: bool = True, device: str | torch.device = "cpu") -> LoadedModel:
    """The model whose checkpoint is `path`: its network built for its arch and method with its weights, its
    masks (held through training unless hold=False: see common.pruning.api.HeldMasks) and its metadata. A SupCon
    or pretext model is two files, encoder and classifier, side by side: either one's path loads both. A file that
    is missing, corrupt, a rewind point or of another model than its name says raises CheckpointError naming it."""
    path = Path(path)
    spec = _spec(path)
    state, masks, meta = _read_parts(path, spec)
    network = _network(path, spec, state, meta).to(device).eval()
    masks = {name: mask.to(device) for name, mask in masks.items()}
    held = hold_masks(network, masks) if hold and masks else None
    return LoadedModel(network, masks, meta, spec, held)


def _spec(path: Path) -> ModelSpec:
    meta = ckpt.read_meta(path)
    if "spec" not in meta:
        raise ckpt.CheckpointError(f"{path} names no model (no spec in its metadata): it is not a model file")
    if {"phase", "epoch", "batch"} <= set(meta) and "config" not in meta:
        raise ckpt.CheckpointError(f"{path} is a rewind point (weights part-way through training), not a finished "
                                   f"model: load the model file of {ModelSpec.from_meta(meta['spec']).name}")
    try:
        return ModelSpec.from_meta(meta["spec"])
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path} has unreadable model metadata ({err}): it is not a model file")


def _read_parts(path: Path, spec: ModelSpec) -> tuple[dict, dict, dict]:
    """(state, masks, metadata) of every part of the model, through common.zoo.load_member where `path` sits where
    the toolkit puts it; the file alone where it does not (a failed member's last state, a renamed copy)."""
    for root in path.resolve().parents:
        paths = Paths(root)
        if path.resolve() in paths.checkpoints(spec):
            return load_member(paths, spec)
    return ckpt.load_model(path)


def _network(path: Path, spec: ModelSpec, state: dict, meta: dict) -> nn.Module:
    """The network of `spec` holding `state`: classes read from the classifier, the projection size from the
    recipe; a projection head the file lacks (finetuned encoders drop it) stays as initialised."""
    if "classifier.weight" not in state:
        raise ckpt.CheckpointError(f"{path} holds no classifier weights: it is not a model file")
    projection_dim = int(meta.get("config", {}).get("projection_dim", 128))
    network = build_network(spec.arch, spec.method, state["classifier.weight"].shape[0], projection_dim)
    if OBJECTIVES[spec.method].heads.projection is not None:
        state = {**{k: v for k, v in network.state_dict().items() if k.startswith("projection.")}, **state}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ckpt.CheckpointError(f"{path} does not fit a {spec.arch} {spec.method} network "
                                   f"({str(err).splitlines()[0]}): delete it or retrain it")
    return network
