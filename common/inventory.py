"""What is on disk: one row per finished model (identity, recipe fingerprint, accuracy, sparsity, provenance),
read from checkpoint headers only, and one row per population. `python reproduce.py --list` prints the
populations and writes the models to logs/models.csv; the training stages write their (dataset, method)'s part.

Provenance of a model: `ok`; `mixed recipe` (its population holds another recipe's members, more of them);
`parent retrained` (a parent it was made from is on disk now with another recipe); `parent missing`.
"""
from __future__ import annotations

import logging
from collections import defaultdict

import pandas as pd

from common import checkpoint as ckpt
from common.paths import Paths
from common.provenance import member_fingerprint, parents_of, recipe_groups
from common.spec import METHOD_DIRS, ModelSpec

log = logging.getLogger("prune")
POPULATION = ["study", "dataset", "method", "arch", "pruning", "sparsity", "knobs"]


def model_metas(paths: Paths, dataset: str | None = None, method: str | None = None) -> dict[ModelSpec, dict]:
    """{spec: metadata of its last part} of every finished model under `paths` (or one dataset and method's);
    an unreadable file is skipped with a warning naming it."""
    folders = {v: k for k, v in METHOD_DIRS.items()}
    metas = {}
    for path in sorted(paths.models.glob("*/*/*.safetensors")):
        if (dataset, method) != (None, None) and path.parent != paths.model_dir(dataset, method):
            continue
        if folders.get(path.parent.name, "supervised") != "supervised" \
                and not path.name.endswith("_classifier.safetensors"):
            continue  # a two-part model (SupCon, a pretext) counts once, by its classifier (written last)
        try:
            meta = ckpt.read_meta(path)
            spec = ModelSpec.from_meta(meta["spec"])
        except (ckpt.CheckpointError, TypeError, KeyError) as err:
            log.warning("not listed: %s (%s)", path, err)
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
    metas = model_metas(paths, dataset, method)
    status = provenance(metas)
    rows = [dict(**dict(zip(POPULATION, _population(spec))), seed=spec.seed, name=spec.name,
                 fingerprint=member_fingerprint(meta), test_accuracy=meta.get("test_accuracy"),
                 measured_sparsity=meta.get("sparsity"), accuracy_after_pruning=meta.get("accuracy_after_pruning"),
                 provenance=status[spec], threads=(meta.get("runtime") or {}).get("threads"),
                 device=(meta.get("runtime") or {}).get("device"),
                 file=paths.checkpoint(spec, spec.parts[-1]).name)
            for spec, meta in metas.items()]
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
