"""The models on disk: finding them (identity from checkpoint metadata), loading one population at a time stacked
for batched inference, and saving the finished members of a trained population.

A message about a model that must be made again names the command that makes it: that is its study's
(`retrain`: the study's `retrain_command(spec, recipe, paths)`, passed by the study's code); the core knows none."""
from __future__ import annotations

import glob
import logging
import re
from collections import defaultdict
from dataclasses import replace
from typing import Callable

import torch

import pandas as pd

from common import checkpoint as ckpt
from common.errors import CheckpointError, UsageError
from common.engine.population import Population
from common.io import write_csv
from common.engine.objectives import METHODS, display_name
from common.models import build_network, part_of
from common.paths import Paths
from common.plots.history import plot_history
from common.provenance import Retrain, check_finished, read_member_meta, retrain_hint
from common.recipe import differences, fingerprint, recipe_of
from common.spec import ModelSpec, sparsity_tag, spec_from_filename

log = logging.getLogger("prune")


def finished_specs(paths: Paths, dataset: str, method: str, arch: str | None = None, study: str = "",
                   retrain: Retrain | None = None, unreadable: list | None = None) -> list[ModelSpec]:
    """Every finished model of a method (and study) on disk (a two-part model: those whose classifier file
    exists), sorted by (pruning, sparsity, knobs, seed). A file that cannot be read (any part; only headers are
    read), or whose metadata names another model than its file name, is skipped with a warning naming it and what
    to do (with `retrain`, the command that makes it again); given `unreadable`, the caller reports them instead:
    it receives (file, the model its name says or None, its population's recipe, that warning) of each."""
    last_part = METHODS[method].parts[-1]
    pattern = "*.safetensors" if last_part == "model" else f"*_{last_part}.safetensors"
    specs, broken, recipes = [], [], {}
    for path in sorted(paths.model_dir(dataset, method, study).glob(pattern)):
        try:
            meta = ckpt.read_meta(path)
            spec = ModelSpec.from_meta(meta["spec"])
        except (CheckpointError, TypeError, KeyError) as err:
            broken.append((path, err))
            continue
        if path.name not in {p.name for p in paths.checkpoints(spec)}:
            log.warning("skipping %s: its metadata says it is %s (a %s %s model), not what its file name says; "
                        "delete it, or rename it to what it holds", path, spec.name, spec.arch, spec.dataset)
            continue
        if (spec.method, spec.dataset, spec.study) == (method, dataset, study) and arch in (None, spec.arch):
            if all(p.is_file() for p in paths.checkpoints(spec)) and _parts_readable(paths, spec, broken):
                specs.append(spec)
                recipes.setdefault(_population(spec), recipe_of(meta))
    for path, err in broken:
        named, message = spec_from_filename(path.name), _unreadable(paths, path, err, recipes, retrain)
        if unreadable is None:
            log.warning(message)
        else:
            unreadable.append((path, named, recipes.get(_population(named)) if named else None, message))
    return sorted(specs, key=lambda s: (s.pruning, s.sparsity, _knob_order(s.knobs), s.seed))


def _knob_order(knobs: tuple) -> tuple:
    """A sort key for knobs whose values mix numbers and words under one key (a layerwise ticket's layers are 3 or
    'last6'): numbers first, in numeric order, then words."""
    return tuple((key, isinstance(value, str), value) for key, value in knobs)


def _population(spec: ModelSpec) -> tuple:
    return spec.study, spec.arch, spec.pruning, sparsity_tag(spec.sparsity), spec.knobs


def _parts_readable(paths: Paths, spec: ModelSpec, unreadable: list) -> bool:
    """The headers of a model's other parts (a SupCon encoder) read too; a truncated file fails here already,
    as safetensors checks that the header covers the whole file."""
    for path in paths.checkpoints(spec)[:-1]:
        try:
            ckpt.read_meta(path)
        except CheckpointError as err:
            unreadable.append((path, err))
            return False
    return True


def _unreadable(paths: Paths, path, err: Exception, recipes: dict, retrain: Retrain | None) -> str:
    """One warning line: which file is skipped, why, and the command that retrains it (with its population's
    recipe when a readable member tells it)."""
    reason = err.__context__ or err  # the library's own words, not the CheckpointError that repeats the path
    spec = spec_from_filename(path.name)
    fix = retrain_hint(spec, recipes.get(_population(spec)), paths, retrain) if spec else "retrain that model"
    return f"skipping {path}: unreadable or corrupt ({type(reason).__name__}: {reason}); delete it and {fix}"


def group_populations(specs: list[ModelSpec], key=lambda spec: (spec.pruning, spec.sparsity)) -> dict[tuple, list]:
    """{key: members sorted by seed}; the key is (pruning, sparsity) unless a study names its own (its knobs)."""
    groups = defaultdict(list)
    for spec in specs:
        groups[key(spec)].append(spec)
    return {k: sorted(v, key=lambda s: s.seed) for k, v in sorted(groups.items())}


def load_member(paths: Paths, spec: ModelSpec, retrain: Retrain | None = None) -> tuple[dict, dict, dict]:
    """(state dict, masks, metadata) of one model, its parts merged. A missing file, or one of another arch,
    dataset or method than its name promises, is an error naming it."""
    state, masks, meta = {}, {}, {}
    for part in spec.parts:
        path = paths.checkpoint(spec, part)
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: {retrain_hint(spec, meta and recipe_of(meta), paths, retrain)}")
        part_state, part_masks, meta = ckpt.load_model(path)
        stored = meta.get("spec", {})
        for key in ("arch", "dataset", "method"):
            if stored.get(key) != getattr(spec, key):
                raise CheckpointError(f"{path} holds a {stored.get(key)} model, not {getattr(spec, key)} "
                                           f"({key}): delete it or retrain it")
        state.update(part_state)
        masks.update(part_masks)
    return state, masks, meta


def load_population(paths: Paths, specs: list[ModelSpec], device: torch.device | str = "cpu",
                    num_classes: int = 10, skip_unreadable: bool = False,
                    retrain: Retrain | None = None) -> tuple[Population, list[dict]]:
    """Stack `specs` (all of one arch and method) into a Population for batched inference. A member that cannot
    be read or does not fit is a CheckpointError naming its file; with `skip_unreadable` it is left out with a
    warning that says so (see load_readable_population), and only a population with no member left is an error."""
    return load_readable_population(paths, specs, device, num_classes, skip_unreadable, retrain)[:2]


def load_readable_population(paths: Paths, specs: list[ModelSpec], device: torch.device | str = "cpu",
                             num_classes: int = 10, skip_unreadable: bool = True, retrain: Retrain | None = None
                             ) -> tuple[Population, list[dict], list[ModelSpec]]:
    """-> (Population, metadata, the specs actually loaded), leaving out unreadable members with a warning."""
    first = specs[0]
    has_projection = METHODS[first.method].embedding
    network = None
    states, metas, loaded = [], [], []
    for spec in specs:
        try:
            state, _, meta = load_member(paths, spec, retrain)
            if network is None:  # built from the first readable member: the projection size is in its recipe
                projection = int(meta.get("config", {}).get("projection_dim", 128)) if has_projection \
                    else 128
                network = build_network(first.arch, first.method, num_classes, projection)
            if has_projection:  # the projection head may be absent (finetuned encoders drop it)
                state = {**{k: v for k, v in network.state_dict().items() if k.startswith("projection.")}, **state}
            try:
                network.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise CheckpointError(f"{paths.checkpoint(spec, spec.parts[0])} does not fit a {spec.arch} "
                                           f"({str(err).splitlines()[0]}): delete it or retrain it")
        except CheckpointError as err:
            if not skip_unreadable:
                raise
            recipe = recipe_of(metas[0]) if metas else None
            log.warning("leaving %s out of its population: %s; %s", spec.name, err,
                        retrain_hint(spec, recipe, paths, retrain))
            continue
        states.append(state)
        metas.append(meta)
        loaded.append(spec)
    if not loaded:
        raise CheckpointError(f"no readable model among {', '.join(s.name for s in specs)} under "
                                   f"{paths.model_dir(first.dataset, first.method)}: retrain them")
    return Population.from_states(network, states, device), metas, loaded


def checkpoint_stamp(paths: Paths, specs: list[ModelSpec]) -> list | None:
    """Name, size and modification time of every checkpoint file of `specs`: a cache computed from them is
    stale once this changes. None when a file vanished since it was listed (then nothing is cached)."""
    try:
        return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for s in specs for p in paths.checkpoints(s)]
    except OSError:
        return None


# ---- saving ----------------------------------------------------------------------------------------

def finished_or_conflict(paths: Paths, spec: ModelSpec, recipe: dict, parents: dict[str, str] | None = None,
                         retrain: Retrain | None = None) -> bool:
    """True when the model is already made with this recipe (and from these parents); an error naming the
    fields that differ when it was made another way, or the file that cannot be read (with `retrain`, and the
    command that makes it again)."""
    files = paths.checkpoints(spec)
    if not all(p.is_file() for p in files):
        return False
    for part, path in zip(spec.parts, files):
        check_finished(path, read_member_meta(paths, spec, part, recipe, retrain), recipe, parents)
    return True


def refuse_mixing(paths: Paths, asked: list[ModelSpec], recipe_for: Callable[[ModelSpec], dict],
                  make: Callable[[list[ModelSpec], dict], str] | None = None) -> None:
    """Before anything is trained: a population on disk made with another recipe gets no new members of this
    one; the line names the fields that differ and (`make(members, recipe)`: its study's command) the command
    that trains them with the population's recipe."""
    if not asked:
        return
    first = asked[0]
    key = lambda s: (s.pruning, s.sparsity, s.knobs)  # noqa: E731 - one population
    for population, members in group_populations(asked, key).items():
        siblings, theirs = population_on_disk(paths, members[0], exclude={s.seed for s in members})
        if not siblings:
            continue
        changed = differences(theirs, recipe_for(members[0]))
        if changed:
            fix = f"train them with the population's recipe: `{make(members, theirs)}`, or" if make else "ask its recipe, or"
            raise UsageError(f"{display_name(first.method)} {members[0].pruning} models at sparsity "
                             f"{members[0].sparsity:g}{_knobs_text(members[0])}: seeds "
                             f"{','.join(str(s.seed) for s in members)} would join seeds "
                             f"{','.join(str(s.seed) for s in siblings)} on disk, made with another recipe (on disk "
                             f"-> asked: {'; '.join(changed)}); {fix} use another --output_root")


def population_on_disk(paths: Paths, member: ModelSpec, exclude: set = frozenset()) -> tuple[list[ModelSpec], dict]:
    """The finished members on disk of `member`'s population (its name but the seed; seeds of `exclude` left out)
    and the recipe of the first that reads (found by name: no other model's header is read)."""
    last = member.parts[-1]
    prefix, suffix = member.name.rsplit("_seed", 1)[0] + "_seed", ("" if last == "model" else f"_{last}")
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(f"{suffix}.safetensors"))
    folder = paths.checkpoint(member, last).parent
    seeds = sorted(int(m[1]) for p in folder.glob(f"{glob.escape(prefix)}*") if (m := pattern.fullmatch(p.name)))
    siblings = [replace(member, seed=seed) for seed in seeds if seed not in exclude]
    siblings = [s for s in siblings if all(p.is_file() for p in paths.checkpoints(s))]
    for sibling in siblings:
        try:
            return siblings, recipe_of(ckpt.read_meta(paths.checkpoint(sibling, last)))
        except CheckpointError:  # an unreadable member says nothing of the population's recipe
            continue
    return [], {}


def _knobs_text(spec: ModelSpec) -> str:
    return "".join(f", {key} {value}" for key, value in spec.knobs)


def save_member(paths: Paths, spec: ModelSpec, state: dict, masks: dict, meta: dict) -> None:
    """Write a finished member: one file, or encoder + classifier for SupCon (classifier last, so a model counts
    as finished only when both exist)."""
    for part in spec.parts:
        keep = (lambda k: True) if part == "model" else (lambda k, p=part: part_of(k) == p)
        ckpt.save_model(paths.checkpoint(spec, part), {k: v for k, v in state.items() if keep(k)},
                        {**meta, "part": part}, {k: m for k, m in masks.items() if keep(k)})


OBJECTIVE_STATE = "rewind::objective::"  # the objective's own state in a rewind point (NPID's bank)


def save_rewind_point(path, point: dict, spec: ModelSpec) -> None:
    """A member's rewind point as safetensors: its weights and buffers, its generator state and data order as
    tensors, where it was taken as metadata."""
    tensors = dict(point["tensors"], **{"rewind::generator": point["generators"], "rewind::order": point["order"]},
                   **{f"{OBJECTIVE_STATE}{n}": t for n, t in point.get("objective", {}).items()})
    ckpt.save_model(path, tensors, dict(spec=spec.to_meta(), **{k: point[k] for k in ("phase", "epoch", "batch")}))


def load_rewind_point(path) -> dict:
    """What `save_rewind_point` wrote, as TrainState.rewound takes it."""
    tensors, _, meta = ckpt.load_model(path)
    point = {k: meta[k] for k in ("phase", "epoch", "batch")}
    objective = {n[len(OBJECTIVE_STATE):]: tensors.pop(n) for n in list(tensors) if n.startswith(OBJECTIVE_STATE)}
    point.update(generators=tensors.pop("rewind::generator"), order=tensors.pop("rewind::order"), tensors=tensors,
                 objective=objective)
    return point


def save_population(paths: Paths, job, state, runtime: dict, curves: bool = True) -> list[dict]:
    """Every member of a finished TrainState as its own checkpoint (a failed member's last good state under
    .failed/), with its metrics CSV and curves; returns the members' metadata. `runtime` (device, threads) and the
    member's place in its population are recorded: together they decide bit-identity (docs/reliability.md, "Determinism")."""
    results = []
    tested = [r for r in state.history if r["test_accuracy"] is not None]
    for i, spec in enumerate(job.specs):
        rows = [r for r in state.history if r["model"] == spec.name]
        accuracy = next((r["test_accuracy"] for r in reversed(tested) if r["model"] == spec.name), None)
        failed = not state.alive[i]
        member_masks = state.masks.member(i)
        meta = dict(spec=spec.to_meta(), config=job.config, recipe=job.recipes[i],
                    fingerprint=fingerprint(job.recipes[i]), test_accuracy=accuracy,
                    sparsity=state.masks.member_sparsity(i),
                    layer_sparsity=state.masks.layer_sparsity(i) if member_masks else {},
                    epochs={p.name: p.epochs for p in job.phases}, failed=failed,
                    versions=ckpt.library_versions(), runtime=dict(runtime, population_index=i,
                                                                   population_size=len(job.specs)),
                    **(job.member_meta[i] if job.member_meta else {}))
        history = pd.DataFrame(rows)
        write_csv(history, paths.metrics_csv(spec))
        if curves:
            plot_history(history, paths.curves_png(spec))
        for table, records in state.records.items():
            write_csv(pd.DataFrame([r for r in records if r["model"] == spec.name]), paths.record_csv(spec, table))
        for key in state.snapshots:
            save_rewind_point(paths.rewind_point(spec, key), state.member_snapshot(key, i), spec)
        if failed:
            path = paths.failed_checkpoint(spec)
            ckpt.save_model(path, state.failed_states[spec.name], meta, member_masks)
            log.error("%s failed (non-finite loss): last good state in %s, not a finished model", spec.name, path)
        else:
            save_member(paths, spec, state.population.member_state(i), member_masks, meta)
        results.append(meta)
    return results
