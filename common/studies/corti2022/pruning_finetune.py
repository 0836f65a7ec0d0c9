"""Prune trained dense models once (global magnitude by default) and finetune them with the masks held.

`sup_pruning_finetune.py` / `clr_pruning_finetune.py`, the authors' one-shot recipe (paper_recipe A.5 item 1).

The dense models 0..`--models_number`-1 are pruned once at every sparsity of `--pruning_percentages` over the
authors' pool: every conv weight of the encoder plus the classifier's weight and bias. Pruned members are
packed into populations of `--population_size` and finetuned together by the training engine, which holds the
masks, so the saved models have exactly the target sparsity over the pool. SupCon models are finetuned end to
end with cross-entropy as the authors did, or (`--finetune_mode representation`) the encoder with the SupCon
loss and then the linear classifier on the frozen encoder.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import replace

import pandas as pd

from common import checkpoint as ckpt, preflight
from common.cli import check_device, parse_flags, preset_values, select_device
from common.config import check_fields
from common.data import load_dataset
from common.data.augment import supervised_augment
from common.engine.inference import evaluate
from common.engine.objectives import display_name
from common.engine.objectives import make_objective
from common.engine.phase import Job, Phase
from common.engine.population import Population
from common.engine.precision import autocast
from common.errors import CheckpointError, UsageError
from common.inventory import models_table, seed_ranges
from common.io import write_csv
from common.log import setup_logging
from common.models import build_network
from common.pruning.criteria import prune_once
from common.phases import supcon_phase
from common.pruning.pools import CLASSIFIER, POOLS
from common.provenance import member_fingerprint, read_metas, refuse_mixed
from common.recipe import recipe_of, value_text
from common.spec import ModelSpec
from common.stage import plan_chunks, train_populations
from common.studies.corti2022.commands import (PRUNINGS, with_recipe, finetune_command, population_command,
                                               retrain_command, script)
from common.studies.corti2022.finetune import (FINETUNE_RULES, PRESETS, RUN_RULES, FinetuneConfig, FinetuneRunConfig,
                                               preset_finetune, preset_finetune_run)
from common.studies.corti2022.paths import CortiPaths
from common.zoo import finished_or_conflict, finished_specs, load_member, refuse_mixing

log = logging.getLogger("prune")


# ---- what is pruned and how it is finetuned -----------------------------------------------------------

def pruned_pool(network, prune_bias: bool) -> list[str]:
    """The authors' one-shot pool: every conv weight of the encoder, the classifier weight (and bias)."""
    return POOLS["encoder_convs_and_classifier" if prune_bias else "encoder_convs_and_classifier_weight"](network)


def build_phases(cfg: FinetuneConfig, network, image_size: int) -> list[Phase]:
    """Cross-entropy end to end with the authors' finetuning recipe, or SupCon on the encoder (its projection
    head kept, not pruned) followed by the classifier on the frozen encoder."""
    names = [n for n, _ in network.named_parameters()]
    classify = tuple(n for n in names if not n.startswith("projection."))
    sgd = dict(momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.finetune_mode == "end_to_end":
        return [Phase("finetune", make_objective("supervised"), cfg.epochs, cfg.batch_size, cfg.learning_rate,
                      weight_decay=cfg.weight_decay, trainable=classify,
                      augment=supervised_augment(cfg, image_size), **sgd)]
    encoder = supcon_phase("finetune_encoder", cfg.temperature, cfg.base_temperature, names, cfg.dataset,
                           epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                           weight_decay=cfg.weight_decay, **sgd)
    head = Phase("finetune_head", make_objective("linear"), cfg.head_epochs, cfg.batch_size_head,
                 cfg.learning_rate_head, weight_decay=0.0, trainable=CLASSIFIER,
                 augment=supervised_augment(cfg, image_size), **sgd)
    return [encoder, head]


# ---- validation and loading ----------------------------------------------------------------------

def validate(cfg: FinetuneConfig, run: FinetuneRunConfig) -> None:
    bad = [s for s in run.pruning_percentages if not 0.0 < s < 1.0]
    if bad or not run.pruning_percentages:
        shown = value_text(bad) if bad else "is empty"
        raise UsageError(f"--pruning_percentages {shown}: sparsities must lie in (0, 1), e.g. 0.5,0.9")
    if run.models_number < 1:
        raise UsageError(f"--models_number {run.models_number}: need at least 1 dense model")
    if run.population_size < 0:
        raise UsageError(f"--population_size {run.population_size}: use 0 (auto), 1, or more")


def dense_specs(paths: CortiPaths, cfg: FinetuneConfig, run: FinetuneRunConfig) -> list[ModelSpec]:
    """The asked dense models, all present on disk, or a one-line error saying which are missing and the command
    that trains them (with the recipe of the dense models already there)."""
    specs = [ModelSpec(cfg.method, cfg.arch, cfg.dataset, "dense", 0.0, seed) for seed in range(run.models_number)]
    missing = [s.seed for s in specs if not all(p.is_file() for p in paths.checkpoints(s))]
    if not missing:
        return specs
    on_disk = [s for s in finished_specs(paths, cfg.dataset, cfg.method, retrain=retrain_command)
               if s.pruning == "dense"]
    here = [s for s in on_disk if s.arch == cfg.arch]
    others = sorted({s.arch for s in on_disk} - {cfg.arch})
    hint = f"; dense {', '.join(others)} models exist (pass --arch)" if others else ""
    recipe = recipe_of(ckpt.read_meta(paths.checkpoint(here[0], here[0].parts[-1]))) if here else None
    command = population_command(cfg.method, "dense", 0.0, cfg.dataset, cfg.arch, missing, run.preset, recipe,
                                 paths.output_root)
    raise UsageError(f"--models_number {run.models_number}: dense {cfg.method} {cfg.arch} {cfg.dataset} models "
                     f"missing for seeds {seed_ranges(missing)} ({len(here)} on disk under {paths.models}){hint}; train "
                     f"them with `{command}`")


def load_dense(paths: CortiPaths, specs: list[ModelSpec]) -> tuple[dict, dict]:
    """{seed: Network} and {seed: metadata} of the dense models; a file of another arch, dataset or shape is a
    CheckpointError naming it."""
    networks, metas = {}, {}
    for spec in specs:
        state, _, meta = load_member(paths, spec, retrain_command)
        projection = int(meta.get("config", {}).get("projection_dim", 128))
        num_classes = state["classifier.weight"].shape[0] if "classifier.weight" in state else 10
        network = build_network(spec.arch, spec.method, num_classes, projection)
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"{paths.checkpoint(spec, spec.parts[0])} does not fit a {spec.arch} "
                                       f"({str(err).splitlines()[0]}): delete it or retrain it")
        networks[spec.seed], metas[spec.seed] = network, meta
    return networks, metas


# ---- pruning a population and measuring it ---------------------------------------------------------

def member_accuracies(pop: Population, data, device, run) -> list[float]:
    with autocast(run.amp, device):
        return evaluate(pop, data.test_images, data.test_labels, data.normalize)[1].tolist()


def prune_chunk(chunk: list[ModelSpec], dense: dict, cfg: FinetuneConfig, data, device, run):
    """Prune the chunk's dense members once. -> (stacked masks on the CPU, per-member metadata)."""
    pop = Population([dense[s.seed] for s in chunk], device)
    template = dense[chunk[0].seed]
    pool = pruned_pool(template, cfg.prune_bias)
    batch = (data.train_images[:cfg.batch_size], data.train_labels[:cfg.batch_size])  # for a data-driven criterion
    masks = prune_once(pop.params, pool, [s.sparsity for s in chunk], cfg.pruning_method, [s.seed for s in chunk],
                       population=pop, batch=batch)
    masks.apply_(pop.params)
    after = member_accuracies(pop, data, device, run)
    pool_size = sum(masks[n][0].numel() for n in pool)
    weights = POOLS["weights"](template)
    metas = []
    for i, spec in enumerate(chunk):
        zeros = sum(int((pop.params[n][i] == 0).sum()) for n in weights)
        metas.append(dict(pruning_method=cfg.pruning_method, target_sparsity=spec.sparsity,
                          accuracy_after_pruning=after[i], pool=pool, pool_size=pool_size,
                          pruned_entries=masks.member_pruned(i),
                          pool_sparsity=masks.member_sparsity(i),
                          weight_sparsity=zeros / sum(pop.params[n][i].numel() for n in weights)))
    return masks.state_dict(), metas


def dense_accuracies(dense: dict, data, device, run, size: int) -> dict[int, float]:
    seeds = sorted(dense)
    accuracies = {}
    for start in range(0, len(seeds), size):
        part = seeds[start:start + size]
        pop = Population([dense[s] for s in part], device)
        accuracies.update(zip(part, member_accuracies(pop, data, device, run)))
    return accuracies


# ---- summary ---------------------------------------------------------------------------------------

def summary_table(paths: CortiPaths, cfg: FinetuneConfig) -> pd.DataFrame:
    """Per (finetune recipe, sparsity): accuracy before pruning, right after it and after finetuning (mean and
    std over models) and the measured pool sparsity, over every finished finetuned model on disk."""
    rows = []
    for spec in finished_specs(paths, cfg.dataset, cfg.method, cfg.arch, retrain=retrain_command):
        if spec.pruning != cfg.pruning_method:
            continue
        meta = ckpt.read_meta(paths.checkpoint(spec, spec.parts[-1]))
        rows.append(dict(sparsity=spec.sparsity, seed=spec.seed, fingerprint=member_fingerprint(meta),
                         finetune_mode=meta.get("config", {}).get("finetune_mode"),
                         epochs=sum((meta.get("epochs") or {}).values()),
                         accuracy_before=meta.get("accuracy_before_pruning"),
                         accuracy_after_pruning=meta.get("accuracy_after_pruning"),
                         accuracy_after_finetune=meta.get("test_accuracy"),
                         measured_sparsity=meta.get("pool_sparsity"), weight_sparsity=meta.get("weight_sparsity")))
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    keys = ["sparsity", "finetune_mode", "epochs", "fingerprint"]
    accuracy = ["accuracy_before", "accuracy_after_pruning", "accuracy_after_finetune"]
    table = frame.groupby(keys, dropna=False).agg(
        models=("seed", "size"), **{f"{c}_{f}": (c, f) for c in accuracy for f in ("mean", "std")},
        measured_sparsity_min=("measured_sparsity", "min"), measured_sparsity_max=("measured_sparsity", "max"),
        weight_sparsity_min=("weight_sparsity", "min"), weight_sparsity_max=("weight_sparsity", "max"))
    return table.reset_index()[["sparsity", "models", *[c for c in table.columns if c != "models"],
                                "finetune_mode", "epochs", "fingerprint"]]


# ---- entry point -------------------------------------------------------------------------------

def parse(method: str, argv=None) -> tuple[FinetuneConfig, FinetuneRunConfig]:
    shown = {preset: preset_values(preset_finetune(method, preset), preset_finetune_run(preset))
             for preset in PRESETS}
    recipe, job = parse_flags(script(method, "pruning_finetune"), __doc__, argv, FinetuneConfig, FinetuneRunConfig,
                              method=method, presets=shown)
    run = preset_finetune_run(**job)
    cfg = preset_finetune(method, run.preset, **recipe)
    check_fields(cfg, FINETUNE_RULES)
    check_fields(run, RUN_RULES)
    check_device(run.cuda_device)
    return cfg, run


def plan(paths: CortiPaths, cfg: FinetuneConfig, run: FinetuneRunConfig):
    """Every check that can fail, before anything is written: -> (dense specs, their metadata, finetuned specs
    asked, those still to do)."""
    validate(cfg, run)
    dense = dense_specs(paths, cfg, run)
    dense_meta = read_metas(paths, dense, retrain_command)
    refuse_mixed(f"the dense {cfg.method} population under {paths.model_dir(cfg.dataset, cfg.method)}", dense_meta,
                 lambda seeds, recipe: _retrain_hint(paths, run, seeds, recipe))
    asks = tuple(name for name, _ in PRUNINGS[cfg.pruning_method].asks)
    specs = [ModelSpec(cfg.method, cfg.arch, cfg.dataset, cfg.pruning_method, s, d.seed, knobs=cfg.knobs)
             for s in dict.fromkeys(run.pruning_percentages) for d in dense]
    todo = [s for s in specs if not finished_or_conflict(paths, s, cfg.recipe(), parents(dense_meta, s.seed),
                                                         retrain_command)]
    refuse_mixing(paths, todo, lambda spec: cfg.recipe(), lambda members, recipe: finetune_command(
        cfg.method, with_recipe(cfg, recipe), replace(run, models_number=max(s.seed for s in members) + 1,
                                                       pruning_percentages=(members[0].sparsity,)), asks))
    return dense, dense_meta, specs, todo


def parents(dense_meta: dict[ModelSpec, dict], seed: int) -> dict[str, str]:
    """{dense parent's name: its fingerprint} of the finetuned model of `seed`."""
    return {spec.name: member_fingerprint(meta) for spec, meta in dense_meta.items() if spec.seed == seed}


def _retrain_hint(paths: CortiPaths, run: FinetuneRunConfig, seeds: list[ModelSpec], recipe: dict) -> str:
    command = population_command(seeds[0].method, "dense", 0.0, seeds[0].dataset, seeds[0].arch,
                                 [s.seed for s in seeds], run.preset, recipe, paths.output_root)
    return f"delete the files of seeds {','.join(str(s.seed) for s in seeds)} and retrain them with `{command}`"


def main(method: str, argv=None) -> list[dict]:
    """sup_pruning_finetune.py / clr_pruning_finetune.py."""
    return finetune(method, *parse(method, argv))


def finetune(method: str, cfg: FinetuneConfig, run: FinetuneRunConfig) -> list[dict]:
    """Prune the dense models of `run` once at each of its sparsities and finetune them with `cfg`; -> the
    finetuned members' metadata."""
    paths = CortiPaths.at(run.output_root)
    dense_list, dense_meta, asked, todo = plan(paths, cfg, run)
    dense, _ = load_dense(paths, dense_list)  # before the dataset: CIFAR-10 may be downloaded
    preflight.check_outputs([paths.model_dir(cfg.dataset, method), paths.log_dir(cfg.dataset, method)],
                            preflight.training_bytes(dense[dense_list[0].seed], len(todo)))
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset)
    device = select_device(run.cuda_device)

    setup_logging(paths.log_file(cfg.dataset, method, "pruning_finetune"))
    log.info("%s %s pruning + finetune: %d models asked, %d already finished, device %s", display_name(method),
             cfg.pruning_method, len(dense_list) * len(run.pruning_percentages),
             len(dense_list) * len(run.pruning_percentages) - len(todo), device)
    log.info("recipe (what shapes each finetuned model besides its dense parent): %s", cfg.recipe())
    data = data.to(device)
    size = run.default_population_size(device)
    phases = build_phases(cfg, dense[dense_list[0].seed], data.image_size)
    before = dense_accuracies(dense, data, device, run, size) if todo else {}
    state_dir = paths.state_dir(cfg.dataset, method)
    planned, left_alone = plan_chunks(asked, todo, size, state_dir, lambda spec: cfg.recipe())
    for line in left_alone:
        log.warning(line)
    jobs = [(pruned_job(p.specs, dense, dense_meta, before, cfg, phases, data, device, run), p.state_path)
            for p in planned]
    results = train_populations(jobs, data, device, run, paths, state_dir, f"{display_name(method)} {cfg.pruning_method} finetune")
    for r in results:
        log.info("%s: accuracy dense %.4f -> pruned %.4f -> finetuned %s, pool sparsity %.4f%s",
                 ModelSpec.from_meta(r["spec"]).name, r["accuracy_before_pruning"], r["accuracy_after_pruning"],
                 "n/a" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}", r["sparsity"],
                 " FAILED" if r["failed"] else "")
    write_csv(models_table(paths, cfg.dataset, method), paths.models_csv(cfg.dataset, method))
    table = summary_table(paths, cfg)
    if not table.empty:
        out = paths.finetune_summary(cfg.dataset, method, cfg.arch, cfg.pruning_method)
        write_csv(table, out)
        log.info("summary (%s):\n%s", out, table.drop(columns=["fingerprint"]).to_string(index=False))
    return results


def pruned_job(chunk: list[ModelSpec], dense: dict, dense_meta: dict, before: dict, cfg: FinetuneConfig,
               phases: list[Phase], data, device, run) -> Job:
    """The job that finetunes the chunk's dense members with their masks held; it prunes them once just before
    it trains (prune_chunk), so a long stage does not prune every population up front."""
    def prepare(job: Job) -> None:
        job.initial_masks, job.member_meta = prune_chunk(chunk, dense, cfg, data, device, run)
        for spec, meta in zip(chunk, job.member_meta):
            meta.update(accuracy_before_pruning=before[spec.seed], parents=parents(dense_meta, spec.seed))
            log.info("%s: accuracy dense %.4f, after one-shot pruning %.4f (pool sparsity %.4f)", spec.name,
                     meta["accuracy_before_pruning"], meta["accuracy_after_pruning"], meta["pool_sparsity"])

    first_meta = next(meta for spec, meta in dense_meta.items() if spec.seed == chunk[0].seed)
    projection = int(first_meta.get("config", {}).get("projection_dim", 128))
    return Job(specs=chunk, phases=phases, config={**cfg.to_dict(), "projection_dim": projection},
               recipes=[cfg.recipe() for _ in chunk], final_sparsity=[s.sparsity for s in chunk], prepare=prepare,
               make_networks=lambda: [copy.deepcopy(dense[s.seed]) for s in chunk])
