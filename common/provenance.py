"""Provenance: which recipe made each model on disk and which parents a derived model was made from, checked
before a stage uses or adds to them.

A population is one recipe: a stage refuses to add a member of another recipe to it, and an analysis refuses a
population that mixes recipes. A derived model (pruned from a dense one, say) records its parents' fingerprints
(`parents`: {parent name: fingerprint}); once a parent is retrained with another recipe, the models derived from
it are stale and refused until they are made again from the current parent.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

from common import checkpoint as ckpt
from common.errors import CheckpointError, UsageError
from common.recipe import differences, fingerprint, recipe_flags, recipe_of
from common.spec import ModelSpec


Retrain = Callable[[ModelSpec, "dict | None", object], str]  # a study's command that makes a model again


def retrain_hint(spec: ModelSpec, recipe: dict | None, paths, retrain: Retrain | None) -> str:
    """'retrain it with `<command>`' (its study's command, when the caller knows its study), or 'retrain it'."""
    return f"retrain it with `{retrain(spec, recipe, paths)}`" if retrain else "retrain it"


def read_member_meta(paths, spec: ModelSpec, part: str, recipe: dict | None = None,
                     retrain: Retrain | None = None) -> dict:
    """The metadata of one file of a model; an unreadable one is a CheckpointError that says how to make it again
    (with `recipe`, the recipe it should have)."""
    path = paths.checkpoint(spec, part)
    try:
        return ckpt.read_meta(path)
    except CheckpointError as err:
        if retrain is None or not path.is_file():
            raise
        reason = err.__context__ or err
        raise CheckpointError(f"{path} is unreadable or corrupt ({type(reason).__name__}: {reason}): delete it and "
                              f"{retrain_hint(spec, recipe, paths, retrain)}") from None


def member_fingerprint(meta: dict, keys: set | None = None) -> str:
    """The fingerprint of the recipe that made a model (over `keys` only, when given)."""
    recipe = recipe_of(meta)
    return fingerprint(recipe if keys is None else {k: recipe[k] for k in sorted(keys)})


def parents_of(meta: dict) -> dict[str, str]:
    """{parent model name: its fingerprint when this model was made from it}; checkpoints written before
    `parents` existed name only their dense parent's fingerprint."""
    if "parents" in meta:
        return dict(meta["parents"])
    if meta.get("dense_fingerprint"):
        spec = ModelSpec.from_meta(meta["spec"])
        dense = ModelSpec(spec.method, spec.arch, spec.dataset, "dense", 0.0, spec.seed, spec.study)
        return {dense.name: meta["dense_fingerprint"]}
    return {}


def stale_parents(meta: dict, current: dict[str, str]) -> list[str]:
    """The parents of a model that are on disk now with another fingerprint than the one it was made from."""
    return [name for name, made_from in parents_of(meta).items() if name in current and current[name] != made_from]


def check_finished(path: Path, meta: dict, recipe: dict, parents: dict[str, str] | None = None) -> None:
    """A finished model about to be skipped as done: made with `recipe` (and from `parents`), or one line that
    names the file and what differs."""
    stored = recipe_of(meta)
    changed = differences(stored, recipe)
    if changed:
        theirs = recipe_flags({key: stored.get(key) for key in recipe}, recipe).strip()
        raise UsageError(f"{path} exists with another recipe (on disk -> asked: {'; '.join(changed)}): to use it, "
                         f"ask its recipe ({theirs or 'its flags'}); otherwise move it away or use another "
                         f"--output_root; it is never overwritten")
    stale = stale_parents(meta, parents or {})
    if stale:
        raise UsageError(f"{path} was made from {', '.join(stale)} before that was retrained with another recipe: "
                         f"move it away and rerun this command to make it from the current model")


def recipe_groups(metas: dict[ModelSpec, dict]) -> list[list[ModelSpec]]:
    """Members grouped by the recipe that made them, largest group first. Recipes are compared over the fields
    every member records, so models written before recipes were narrowed compare with newer ones."""
    keys = set.intersection(*(set(recipe_of(meta)) for meta in metas.values()))
    groups = defaultdict(list)
    for spec, meta in metas.items():
        groups[member_fingerprint(meta, keys)].append(spec)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0].seed))


def refuse_mixed(label: str, metas: dict[ModelSpec, dict], fix) -> None:
    """One line when a population mixes recipes: the seeds of the two largest groups and the fields that differ;
    `fix(minority seeds, majority recipe)` says what to run."""
    groups = recipe_groups(metas)
    if len(groups) < 2:
        return
    major, minor = groups[0], [spec for group in groups[1:] for spec in group]
    changed = differences(recipe_of(metas[minor[0]]), recipe_of(metas[major[0]]))
    raise UsageError(f"{label} mixes {len(groups)} recipes: seeds {_seeds(minor)} differ from seeds {_seeds(major)} "
                     f"({'; '.join(changed)}); {fix(minor, recipe_of(metas[major[0]]))}")


def read_metas(paths, specs: list[ModelSpec], retrain: Retrain | None = None) -> dict[ModelSpec, dict]:
    """{spec: metadata of its last part} (headers only); a file that cannot be read, or that holds another model
    than its name says, is a CheckpointError naming it (with `retrain`, and the command that makes it again)."""
    metas = {}
    for spec in specs:
        path = paths.checkpoint(spec, spec.parts[-1])
        metas[spec] = read_member_meta(paths, spec, spec.parts[-1], retrain=retrain)
        held = ModelSpec.from_meta(metas[spec]["spec"])
        if held != spec:
            raise CheckpointError(f"{path} holds {held.name} (a {held.arch} {held.dataset} model), not what its "
                                       f"name says: delete it or retrain it")
    return metas


def _seeds(specs: list[ModelSpec]) -> str:
    return ",".join(str(spec.seed) for spec in specs)
