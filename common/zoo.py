"""The models on disk: finding them (identity from checkpoint metadata), loading one population at a time stacked
for batched inference, and saving the finished members of a trained population."""
from __future__ import annotations

import logging
from collections import defaultdict

import torch

import pandas as pd

from common import checkpoint as ckpt
from common.cli import UsageError
from common.commands import retrain_command, script_for
from common.engine.population import Population
from common.io import write_csv
from common.models import build_network, part_of
from common.paths import Paths
from common.plots.history import plot_history
from common.spec import DEFAULT_STUDY, ModelSpec, spec_from_filename

log = logging.getLogger("prune")


def finished_specs(paths: Paths, dataset: str, method: str, arch: str | None = None,
                   study: str = DEFAULT_STUDY) -> list[ModelSpec]:
    """Every finished model of a method (and study) on disk (SupCon: those whose classifier file exists), sorted by
    (pruning, sparsity, knobs, seed). A model with an unreadable or truncated file (any part; only headers are
    read) is skipped with a warning naming the file and the command that retrains it."""
    last_part = "model" if method == "supervised" else "classifier"
    pattern = "*.safetensors" if last_part == "model" else "*_classifier.safetensors"
    specs = []
    for path in sorted(paths.model_dir(dataset, method).glob(pattern)):
        try:
            spec = ModelSpec.from_meta(ckpt.read_meta(path)["spec"])
        except (ckpt.CheckpointError, TypeError, KeyError) as err:
            log.warning(_unreadable(path, err))
            continue
        if (spec.method, spec.dataset, spec.study) == (method, dataset, study) and arch in (None, spec.arch):
            if all(p.is_file() for p in paths.checkpoints(spec)) and _parts_readable(paths, spec):
                specs.append(spec)
    return sorted(specs, key=lambda s: (s.pruning, s.sparsity, s.knobs, s.seed))


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


def group_populations(specs: list[ModelSpec], key=lambda spec: (spec.pruning, spec.sparsity)) -> dict[tuple, list]:
    """{key: members sorted by seed}; the key is (pruning, sparsity) unless a study names its own (its knobs)."""
    groups = defaultdict(list)
    for spec in specs:
        groups[key(spec)].append(spec)
    return {k: sorted(v, key=lambda s: s.seed) for k, v in sorted(groups.items())}


def load_member(paths: Paths, spec: ModelSpec) -> tuple[dict, dict, dict]:
    """(state dict, masks, metadata) of one model, its SupCon parts merged. A file of another arch, dataset or
    method than its name promises is an error naming it."""
    state, masks, meta = {}, {}, {}
    for part in spec.parts:
        path = paths.checkpoint(spec, part)
        if not path.is_file():
            raise ckpt.CheckpointError(f"{path} is missing: train it with {script_for(spec)}")
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


# ---- saving ----------------------------------------------------------------------------------------

def finished_or_conflict(paths: Paths, spec: ModelSpec, fingerprint: str) -> bool:
    """True when the model is already trained with this recipe; an error when it was trained with another."""
    files = paths.checkpoints(spec)
    if not all(p.is_file() for p in files):
        return False
    for path in files:
        meta = ckpt.read_meta(path)
        if meta.get("fingerprint") != fingerprint:
            raise UsageError(f"{path} exists with another recipe (fingerprint {meta.get('fingerprint')} != "
                             f"{fingerprint}): move it away or use another --output_root; it is never overwritten")
    return True


def save_member(paths: Paths, spec: ModelSpec, state: dict, masks: dict, meta: dict) -> None:
    """Write a finished member: one file, or encoder + classifier for SupCon (classifier last, so a model counts
    as finished only when both exist)."""
    for part in spec.parts:
        keep = (lambda k: True) if part == "model" else (lambda k, p=part: part_of(k) == p)
        ckpt.save_model(paths.checkpoint(spec, part), {k: v for k, v in state.items() if keep(k)},
                        {**meta, "part": part}, {k: m for k, m in masks.items() if keep(k)})


def save_population(paths: Paths, job, state) -> list[dict]:
    """Every member of a finished TrainState as its own checkpoint (a failed member's last good state under
    .failed/), with its metrics CSV and curves; returns the members' metadata."""
    results = []
    tested = [r for r in state.history if r["test_accuracy"] is not None]
    for i, spec in enumerate(job.specs):
        rows = [r for r in state.history if r["model"] == spec.name]
        accuracy = next((r["test_accuracy"] for r in reversed(tested) if r["model"] == spec.name), None)
        failed = not state.alive[i]
        member_masks = state.masks.member(i)
        meta = dict(spec=spec.to_meta(), config=job.recipe, fingerprint=job.fingerprint, test_accuracy=accuracy,
                    sparsity=state.masks.member_sparsity(i),
                    layer_sparsity=state.masks.layer_sparsity(i) if member_masks else {},
                    epochs={p.name: p.epochs for p in job.phases}, failed=failed,
                    versions=ckpt.library_versions(), **(job.member_meta[i] if job.member_meta else {}))
        history = pd.DataFrame(rows)
        write_csv(history, paths.metrics_csv(spec))
        plot_history(history, paths.curves_png(spec))
        if failed:
            path = paths.failed_checkpoint(spec)
            ckpt.save_model(path, state.failed_states[spec.name], meta, member_masks)
            log.error("%s failed (non-finite loss): last good state in %s, not a finished model", spec.name, path)
        else:
            save_member(paths, spec, state.population.member_state(i), member_masks, meta)
        results.append(meta)
    return results
