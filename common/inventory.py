"""What is on disk: one row per finished model (identity, recipe fingerprint, accuracy, sparsity, provenance),
read from checkpoint headers only, and one row per population. `python reproduce.py --list` prints the
populations and writes the models to logs/models.csv; the training stages write their (dataset, method)'s part.

Provenance of a model: `ok`; `mixed recipe` (its population holds another recipe's members, more of them);
`parent retrained` (a parent it was made from is on disk now with another recipe); `parent missing`;
`unreadable` (a file of it cannot be read: it is listed from its file name, and counts as not ok).
"""
from __future__ import annotations

import logging
from collections import defaultdict

import pandas as pd

from common import checkpoint as ckpt
from common.paths import Paths
from common.provenance import member_fingerprint, parents_of, recipe_groups
from common.engine.objectives import METHODS
from common.spec import ModelSpec, spec_from_filename
from common.errors import CheckpointError

log = logging.getLogger("prune")
POPULATION = ["study", "dataset", "method", "arch", "pruning", "sparsity", "knobs"]


def model_files(paths: Paths) -> list:
    """The file that marks each model finished (its last part: the classifier of a two-part model), under
    models/<dataset>/<Method>/ (the first study's) and models/<dataset>/<study>/<Method>/."""
    folders = {o.folder: o for o in METHODS.values()}
    files = []
    for path in sorted([*paths.models.glob("*/*/*.safetensors"), *paths.models.glob("*/*/*/*.safetensors")]):
        if path.parent.name.startswith("."):  # .failed/, .rewind/: never a finished model
            continue
        objective = folders.get(path.parent.name)
        last = objective.parts[-1] if objective else "model"
        if last == "model" or path.name.endswith(f"_{last}.safetensors"):
            files.append(path)
    return files


def model_metas(paths: Paths, dataset: str | None = None, method: str | None = None,
                unreadable: dict | None = None) -> dict[ModelSpec, dict]:
    """{spec: metadata of its last part} of every finished model under `paths` (or one dataset and method's of
    the first study). A file that cannot be read is left out with a warning naming it, and put in `unreadable`
    ({spec from its file name: the error}) when given."""
    metas = {}
    for path in model_files(paths):
        if (dataset, method) != (None, None) and path.parent != paths.model_dir(dataset, method):
            continue
        try:
            meta = ckpt.read_meta(path)
            spec = ModelSpec.from_meta(meta["spec"])
            for part in paths.checkpoints(spec)[:-1]:  # a two-part model's other part reads too
                if part.is_file():
                    ckpt.read_meta(part)
        except (CheckpointError, TypeError, KeyError) as err:
            log.warning("unreadable: %s (%s)", path, err)
            named = spec_from_filename(path.name)
            if unreadable is not None and named is not None:
                unreadable[named] = err
            continue
        if all(p.is_file() for p in paths.checkpoints(spec)):
            metas[spec] = meta
    return metas


def provenance(metas: dict[ModelSpec, dict]) -> dict[ModelSpec, str]:
    """Each model's provenance status (module docstring)."""
    status = {}
    populations = defaultdict(dict)
    for spec, meta in metas.items():
        populations[_population(spec)][spec] = meta
    for members in populations.values():
        for minority in recipe_groups(members)[1:]:
            status.update(dict.fromkeys(minority, "mixed recipe"))
    current = {spec.name: member_fingerprint(meta) for spec, meta in metas.items()}
    for spec, meta in metas.items():
        parents = parents_of(meta)
        if spec not in status and any(name not in current for name in parents):
            status[spec] = "parent missing"
        elif spec not in status and any(current[name] != made for name, made in parents.items()):
            status[spec] = "parent retrained"
    return {spec: status.get(spec, "ok") for spec in metas}


def models_table(paths: Paths, dataset: str | None = None, method: str | None = None) -> pd.DataFrame:
    """One row per finished model, pandas-loadable; sorted by population and seed."""
    unreadable = {}
    metas = model_metas(paths, dataset, method, unreadable)
    status = provenance(metas)
    rows = [dict(**dict(zip(POPULATION, _population(spec))), seed=spec.seed, name=spec.name,
                 fingerprint=member_fingerprint(meta), test_accuracy=meta.get("test_accuracy"),
                 measured_sparsity=meta.get("sparsity"), accuracy_after_pruning=meta.get("accuracy_after_pruning"),
                 provenance=status[spec], threads=(meta.get("runtime") or {}).get("threads"),
                 device=(meta.get("runtime") or {}).get("device"),
                 file=paths.checkpoint(spec, spec.parts[-1]).name)
            for spec, meta in metas.items()]
    rows += [dict(**dict(zip(POPULATION, _population(spec))), seed=spec.seed, name=spec.name, fingerprint="",
                  test_accuracy=None, provenance="unreadable", file=paths.checkpoint(spec, spec.parts[-1]).name)
             for spec in unreadable]
    if not rows:
        return pd.DataFrame(columns=[*POPULATION, "seed", "name", "fingerprint", "test_accuracy", "provenance"])
    return pd.DataFrame(rows).sort_values([*POPULATION, "seed"], kind="stable").reset_index(drop=True)


def populations_table(models: pd.DataFrame) -> pd.DataFrame:
    """One row per population: its seeds, recipes, accuracy (mean, std) and how many models are not 'ok'."""
    if models.empty:
        return pd.DataFrame()
    grouped = models.groupby(POPULATION, dropna=False, sort=True)
    return grouped.agg(models=("seed", "size"), seeds=("seed", seed_ranges),
                       recipes=("fingerprint", lambda f: ",".join(sorted(set(f)))),
                       accuracy_mean=("test_accuracy", "mean"), accuracy_std=("test_accuracy", "std"),
                       not_ok=("provenance", lambda p: int((p != "ok").sum()))).reset_index()


def _population(spec: ModelSpec) -> tuple:
    knobs = ",".join(f"{key}-{value}" for key, value in spec.knobs)
    return spec.study, spec.dataset, spec.method, spec.arch, spec.pruning, spec.sparsity, knobs


def seed_ranges(seeds) -> str:
    """[0, 1, 2, 3] -> '0..3'; [0, 2] -> '0,2': seeds as a person reads them."""
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}..{seeds[-1]}"
    return ",".join(map(str, seeds))
