"""Pruning Identified Exemplars (PIEs), Q-Score, PIE overlaps and UMAP of one learning method's populations.

Shared by `sup_pie_kmodels_detection.py` and `clr_pie_kmodels_detection.py`.

For every pruned population on disk (or those named by `--pruning_methods` / `--pruning_percentages`), the
first `--models_number` members of the dense and of the pruned population each predict the test set in one
batched pass; an example is a PIE iff the two populations' modal labels differ (Hooker et al.; modal ties go to
the smallest class, the authors' rule). Dense outputs are computed once and reused for every configuration, and
every population's outputs are cached (pies/<dataset>/<method>/cache/), so reruns skip inference.

Outputs under pies/<dataset>/<SupCon|supervised>/ (see common.paths.Paths, '# ---- PIE analysis'):
    summary.csv                              one row per (pruning, sparsity): population sizes, accuracies, PIEs
    examples/pies_<pruning>_s<s>.csv         one row per test example (flags, modal labels, agreement, scores)
    overlaps.csv                             PIEs shared between pruning methods at equal sparsity
    pies_vs_sparsity.png, pies_per_class/, pie_images/, overlaps/, q_score/, z_score/, l1_norm/, umap/
and pies/<dataset>/comparison/ for supervised vs SupCon once both methods' populations are on disk.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.cli import check_device, config_flags, parse_flags, preset_values
from common.errors import UsageError
from common.config import help_field
from common.data import DATASETS as DATASET_REGISTRY, Dataset
from common.engine.inference import predict
from common.io import atomic_path, upsert_csv, write_csv
from common.log import progress
from common.metrics.disparity import class_disparity
from common.metrics.overlaps import pairwise_overlaps, per_class_overlap
from common.metrics.pies import agreement, modal_labels
from common.metrics.qscore import representation_scores
from common.metrics.verdicts import jackknife, leave_one_out_pies, seed_difference
from common.studies.corti2022.paths import CortiPaths
from common.plots.pies import (plot_overlap_per_class, plot_pie_images, plot_pies_per_class, plot_pies_vs_sparsity,
                               plot_score_scatter, plot_umap_panels)
from common.engine.objectives import display_name
from common.spec import ModelSpec, sparsity_tag
from common.studies.corti2022.commands import METHODS, PRUNED, retrain_command, script
from common.studies.corti2022.analysis import AnalysisContext, first_members, validate_selection
from common.studies.corti2022.config import ARCHS, DATASETS, RunConfig, preset_config
from common.zoo import checkpoint_stamp, load_readable_population

log = logging.getLogger("prune")

SCORES = {"q_score": "Q-Score", "z_score": "z-score", "l1_norm": "L1 norm"}  # column -> the authors' axis name
RUN_FIELDS = ("preset", "data_dir", "output_root", "cuda_device", "progress")


@dataclass(frozen=True)
class PieConfig:
    dataset: str = help_field("cifar10", "dataset of the models",
                              choices=DATASETS)
    arch: str = help_field("wrn16_2", "architecture of the models",
                           choices=ARCHS)
    models_number: int = help_field(30, "models per population: the first K seeds on disk (fewer: all, warned)")
    pruning_methods: tuple = help_field((), f"pruning methods to analyse, of {', '.join(PRUNED)}; "
                                            f"none = all on disk", nargs="*", item=str)
    pruning_percentages: tuple = help_field((), "sparsities to analyse (comma or space separated); none = all on disk",
                                            nargs="*", item=float)
    plot_q_score: bool = help_field(False, "per-example Q-Score, z-score and L1 norm of the encoder representation, "
                                           "averaged over each population; dense-vs-pruned scatters")
    plot_umap: bool = help_field(False, "UMAP of model 0's test representations, dense and pruned side by side "
                                        "(the authors use it with --models_number 1)")
    umap_color: str = help_field("true", "colour UMAP points by the true label (comparable across panels) or by "
                                         "each population's modal predicted label (the authors' choice)",
                                 choices=("true", "predicted"))
    umap_seed: int = help_field(0, "UMAP random_state (the authors left it unset, so their plots are not repeatable)")
    umap_neighbors: int = help_field(15, "UMAP n_neighbors (the library's value, as the authors)")
    umap_min_dist: float = help_field(0.1, "UMAP min_dist (the library's value, as the authors)")
    max_pie_images: int = help_field(40, "PIEs shown in each image grid (the lowest test indices first)")
    compare: bool = help_field(True, "also compare with the other learning method's PIEs when its populations "
                                     "are on disk (pies/<dataset>/comparison/)")
    batch_size: int = help_field(1024, "test images per inference batch (all members run on each batch)")
    allow_missing_members: bool = help_field(False, "compare what remains of a population some of whose model files "
                                                    "are unreadable (the summary's *_models columns say how many); "
                                                    "without it such a population stops the stage, naming the files "
                                                    "and the command that retrains them")

    @property
    def with_features(self) -> bool:
        """Q-Score and UMAP need each member's encoder representation, not only its predictions."""
        return self.plot_q_score or self.plot_umap


# ---- flags -------------------------------------------------------------------------------------------

# The populations a preset compares (those `reproduce.py --preset P` trains: its PRESETS' models_number); the
# dataset and arch are those its models are trained on.
PRESETS = {"paper": {}, "demo": dict(models_number=3), "study": dict(models_number=5)}


def preset_pies(method: str, preset: str = "paper", **overrides) -> PieConfig:
    recipe = preset_config(method, preset)
    return replace(PieConfig(dataset=recipe.dataset, arch=recipe.arch), **{**PRESETS[preset], **overrides})


def parse(method: str, argv=None) -> tuple[PieConfig, RunConfig]:
    shown = {preset: preset_values(preset_pies(method, preset)) for preset in PRESETS}
    given, job = parse_flags(script(method, "pie_kmodels_detection"), __doc__, argv, PieConfig,
                             (RunConfig, RUN_FIELDS), presets=shown)
    run = RunConfig(**job)
    check_device(run.cuda_device)
    return preset_pies(method, run.preset, **given), run


def pie_argv(method: str, cfg: PieConfig, run: RunConfig) -> list[str]:
    """The flags that ask for `cfg` and `run` (parse reads them back)."""
    others = tuple(f.name for f in fields(RunConfig) if f.name not in RUN_FIELDS)
    return ["--preset", run.preset, *config_flags(cfg, preset_pies(method, run.preset)),
            *config_flags(run, RunConfig(preset=run.preset), skip=("preset", "output_root", *others)),
            *(["--output_root", run.output_root] if run.output_root else [])]


def validate(cfg: PieConfig) -> None:
    if cfg.models_number < 1:
        raise UsageError(f"--models_number {cfg.models_number}: use 1 or more models per population")
    validate_selection(cfg.pruning_methods, cfg.pruning_percentages)
    if cfg.max_pie_images < 0 or cfg.batch_size < 1:
        raise UsageError("--max_pie_images must be >= 0 and --batch_size >= 1")
    if cfg.umap_neighbors < 2 or cfg.umap_min_dist < 0:
        raise UsageError(f"--umap_neighbors {cfg.umap_neighbors} --umap_min_dist {cfg.umap_min_dist}: "
                         f"need n_neighbors >= 2 and min_dist >= 0")


# ---- population outputs (one pass per population, cached) ----------------------------------------------

@dataclass(frozen=True)
class PopulationOutputs:
    """What the analysis needs from one population's pass over the test set."""

    names: tuple  # member model names, in seed order
    preds: np.ndarray  # [K, N] predicted labels
    scores: dict | None  # {'q_score'|'z_score'|'l1_norm': [N]} averaged over the K members
    features0: np.ndarray | None  # [N, D] the first member's encoder representation (UMAP)
    member_q: np.ndarray | None = None  # [K, N] each member's Q-Score (tests pair a pruned member with its parent)

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def seeds(self) -> list[int]:
        """Each member's seed: a pruned member and its dense parent share it (the unit of every interval)."""
        return [int(name.rsplit("_seed", 1)[1]) for name in self.names]


def data_fingerprint(data: Dataset) -> str:
    """Changes with the test set's images, labels or normalisation (a cache must not outlive them)."""
    digest = hashlib.sha1(data.test_images.cpu().numpy().tobytes())
    digest.update(data.test_labels.cpu().numpy().tobytes())
    digest.update(json.dumps([data.name, data.mean, data.std]).encode())
    return digest.hexdigest()


def _cache_key(paths: CortiPaths, specs: list[ModelSpec], data_key: str) -> str | None:
    """Changes when a member is added, removed or rewritten, or the test set changes; None: do not cache."""
    stamp = checkpoint_stamp(paths, specs)
    return None if stamp is None else hashlib.sha1(json.dumps([data_key, stamp]).encode()).hexdigest()


def _read_cache(path: Path, key: str | None, with_features: bool) -> PopulationOutputs | None:
    if key is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key or (with_features and "features0" not in npz.files):
                return None
            scores = {k: npz[k] for k in SCORES} if "q_score" in npz.files else None
            if scores is not None and "member_q" not in npz.files:
                return None  # written before member scores were kept: recompute
            features0 = npz["features0"] if "features0" in npz.files else None
            member_q = npz["member_q"] if "member_q" in npz.files else None
            return PopulationOutputs(tuple(npz["names"].tolist()), npz["preds"].astype(np.int64), scores, features0,
                                     member_q)
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable cache %s (%s)", path, err)
        return None


def _write_cache(path: Path, key: str, outputs: PopulationOutputs) -> None:
    arrays = dict(key=np.array(key), names=np.array(outputs.names), preds=outputs.preds.astype(np.int16))
    if outputs.scores is not None:
        arrays.update(outputs.scores, features0=outputs.features0, member_q=outputs.member_q)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def population_outputs(paths: CortiPaths, specs: list[ModelSpec], data: Dataset, device: torch.device,
                       with_features: bool, batch_size: int, data_key: str,
                       allow_missing: bool = False) -> PopulationOutputs:
    """Predictions of every member on the test set (one batched pass over the stacked population), and with
    `with_features` the per-example Q-Score / z-score / L1 norm of the L2-normalised encoder representation
    averaged over the members (the authors' --plot_q_score), plus member 0's representation. A member whose
    file cannot be read is a CheckpointError naming it, or with `allow_missing` left out with a warning
    (zoo.load_readable_population)."""
    first = specs[0]
    cache = paths.pie_predictions(first.dataset, first.method, first.pruning, first.sparsity)
    key = _cache_key(paths, specs, data_key)
    cached = _read_cache(cache, key, with_features)
    if cached is not None:
        log.info("%s %s s=%g: %d members' predictions from %s", display_name(first.method), first.pruning, first.sparsity,
                 cached.size, cache)
        return cached
    pop, _, loaded = load_readable_population(paths, specs, device, data.num_classes, allow_missing, retrain_command)
    with torch.no_grad():
        scores = features0 = member_q = None
        if not with_features:
            preds = predict(pop, data.test_images, data.normalize, "logits", batch_size).argmax(-1).cpu().numpy()
        else:  # one pass: the logits are each member's linear classifier on its features
            features = predict(pop, data.test_images, data.normalize, "features", batch_size)  # [K, N, D]
            weight, bias = pop.params["classifier.weight"].float(), pop.params["classifier.bias"].float()
            logits = torch.einsum("knd,kcd->knc", features, weight) + bias[:, None]
            preds = logits.argmax(-1).cpu().numpy()
            members, examples = features.shape[:2]
            flat = representation_scores(features.flatten(0, 1))  # [K*N] each
            scores = {k: v.view(members, examples).mean(0).cpu().numpy() for k, v in flat.items()}
            member_q = flat["q_score"].view(members, examples).cpu().numpy()
            features0 = features[0].cpu().numpy()
    del pop
    outputs = PopulationOutputs(tuple(s.name for s in loaded), preds.astype(np.int64), scores, features0, member_q)
    if key is not None and len(loaded) == len(specs):  # a population missing a member is not cached
        _write_cache(cache, key, outputs)
    return outputs


# ---- per-example and summary tables (pure) ---------------------------------------------------------------

def example_table(dense: PopulationOutputs, pruned: PopulationOutputs, labels: np.ndarray,
                  num_classes: int) -> pd.DataFrame:
    """One row per test example: modal labels, PIE flag, each population's agreement with its modal label and
    accuracy (fraction of members correct), and the averaged scores when both populations have them."""
    dense_modal = modal_labels(dense.preds, num_classes)
    pruned_modal = modal_labels(pruned.preds, num_classes)
    table = pd.DataFrame(dict(
        index=np.arange(len(labels)), true_label=labels, dense_modal_label=dense_modal,
        pruned_modal_label=pruned_modal, pie=dense_modal != pruned_modal,
        dense_agreement=agreement(dense.preds, dense_modal), pruned_agreement=agreement(pruned.preds, pruned_modal),
        dense_accuracy=(dense.preds == labels).mean(0), pruned_accuracy=(pruned.preds == labels).mean(0)))
    if dense.scores is not None and pruned.scores is not None:
        for score in SCORES:
            table[f"dense_{score}"] = dense.scores[score]
            table[f"pruned_{score}"] = pruned.scores[score]
    return table


def summary_row(table: pd.DataFrame, dense: PopulationOutputs, pruned: PopulationOutputs) -> dict:
    """Population sizes, member accuracy (mean ± std over members), modal-label accuracy, PIE count and rate,
    and accuracies on PIEs vs the rest: 'modal' = accuracy of the population's modal label, 'member' = mean
    over examples of the fraction of members correct."""
    labels = table["true_label"].to_numpy()
    pies = table["pie"].to_numpy()
    dense_acc = (dense.preds == labels).mean(1)
    pruned_acc = (pruned.preds == labels).mean(1)
    row = dict(dense_models=dense.size, pruned_models=pruned.size, examples=len(table),
               dense_accuracy_mean=dense_acc.mean(), dense_accuracy_std=dense_acc.std(ddof=1) if dense.size > 1
               else np.nan, pruned_accuracy_mean=pruned_acc.mean(),
               pruned_accuracy_std=pruned_acc.std(ddof=1) if pruned.size > 1 else np.nan,
               dense_modal_accuracy=(table["dense_modal_label"] == table["true_label"]).mean(),
               pruned_modal_accuracy=(table["pruned_modal_label"] == table["true_label"]).mean(),
               pies=int(pies.sum()), pie_rate=pies.mean())
    for who in ("dense", "pruned"):
        modal_correct = (table[f"{who}_modal_label"] == table["true_label"]).to_numpy()
        member_correct = table[f"{who}_accuracy"].to_numpy()
        for part, mask in (("pies", pies), ("rest", ~pies)):
            row[f"{who}_modal_accuracy_on_{part}"] = modal_correct[mask].mean() if mask.any() else np.nan
            row[f"{who}_member_accuracy_on_{part}"] = member_correct[mask].mean() if mask.any() else np.nan
    for score in SCORES:
        if f"dense_{score}" not in table:
            continue
        for who in ("dense", "pruned"):
            values = table[f"{who}_{score}"].to_numpy()
            row[f"{who}_{score}_mean"] = values.mean()
            row[f"{who}_{score}_std"] = values.std()
            row[f"{who}_{score}_pies"] = values[pies].mean() if pies.any() else np.nan
            row[f"{who}_{score}_rest"] = values[~pies].mean() if (~pies).any() else np.nan
    return row


# ---- UMAP -----------------------------------------------------------------------------------------------

def umap_embedding(features: np.ndarray, cfg: PieConfig) -> np.ndarray:
    """2-D UMAP of ONE model's representations [N, D] -> [N, 2], in this process (no multiprocessing).

    One model, not an average: members are trained independently, so their feature axes are unaligned and
    averaging their representations (what the authors' code does when more than one model is loaded,
    paper_recipe A.7/C.9) mixes unrelated coordinates. random_state makes the embedding repeatable.

    The Euclidean k-NN graph is computed exactly by scikit-learn and handed to UMAP: the same graph UMAP builds
    itself below 4,096 points (above, it approximates it with NN-descent), and it skips half of UMAP's numba
    compilation, which dominates on small test sets."""
    import umap  # slow import (numba): only when --plot_umap asks for it
    from sklearn.neighbors import NearestNeighbors  # as umap: only for --plot_umap

    features = np.asarray(features, dtype=np.float32)
    neighbors = min(cfg.umap_neighbors, len(features) - 1)
    distances, indices = NearestNeighbors(n_neighbors=neighbors).fit(features).kneighbors(features)
    reducer = umap.UMAP(n_neighbors=neighbors, min_dist=cfg.umap_min_dist, n_components=2,
                        random_state=cfg.umap_seed, n_jobs=1,
                        precomputed_knn=(indices, distances.astype(np.float32), None))
    with warnings.catch_warnings():  # no search index: only UMAP.transform (never used here) would need one
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        return reducer.fit_transform(features)


def write_leave_one_out(path: Path, seeds: list[int], masks: np.ndarray, pies: np.ndarray) -> None:
    """The PIE masks [S, N] with each of `seeds` left out, and the full mask [N], bits packed along examples (read
    back by common.studies.corti2022.claims.leave_one_out)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, packed=np.packbits(masks, axis=1), full=np.packbits(pies), seeds=np.array(seeds),
                            examples=np.array(len(pies)))


# ---- the stage ------------------------------------------------------------------------------------------

@dataclass
class Stage:
    """One run's context (configuration, output paths, test data, device) and the steps that need all of it."""

    cfg: PieConfig
    context: AnalysisContext
    data: Dataset
    device: torch.device

    @property
    def method(self) -> str:
        return self.context.method

    @property
    def paths(self) -> CortiPaths:
        return self.context.paths

    def __post_init__(self):
        self.data_key = data_fingerprint(self.data)

    def outputs(self, specs: list[ModelSpec], with_features: bool) -> PopulationOutputs:
        return population_outputs(self.paths, specs, self.data, self.device, with_features, self.cfg.batch_size,
                                  self.data_key, self.cfg.allow_missing_members)

    def title(self, pruning: str, sparsity: float, dense: PopulationOutputs, pruned: PopulationOutputs) -> str:
        return (f"{display_name(self.method)} {self.cfg.dataset} {self.cfg.arch}: {pruning} {sparsity:g} "
                f"(K={pruned.size}) vs dense (K={dense.size})")

    def figure(self, kind: str, pruning: str = "", sparsity: float | None = None, ext: str = "png") -> Path:
        return self.paths.pie_figure(self.cfg.dataset, self.method, kind, pruning, sparsity, ext)

    def configuration(self, pruning: str, sparsity: float, members: list[ModelSpec], dense: PopulationOutputs,
                      dense_embedding: np.ndarray | None, pie_sets: dict) -> dict:
        """PIEs of one pruned population against the dense one: per-example table, figures, summary row."""
        tick = time.time()
        cfg, labels = self.cfg, self.data.test_labels.numpy()
        members = first_members(members, cfg.models_number, f"{self.context.name} {pruning} {sparsity:g}")
        pruned = self.outputs(members, cfg.with_features)
        table = example_table(dense, pruned, labels, self.data.num_classes)
        write_csv(table, self.paths.pie_examples(cfg.dataset, self.method, pruning, sparsity))
        pie_sets[(pruning, sparsity)] = table["pie"].to_numpy()
        row = dict(method=display_name(self.method), dataset=cfg.dataset, arch=cfg.arch, pruning=pruning,
                   sparsity=sparsity, **summary_row(table, dense, pruned),
                   **self.intervals(pruning, sparsity, dense, pruned, table["pie"].to_numpy()))
        self.plot_configuration(table, pruning, sparsity, dense, pruned, dense_embedding)
        log.info("Method: %s Pruning method: %s Pruned: %g Models pruned: %d Models not pruned: %d Found PIEs: %d "
                 "(%.1fs)", display_name(self.method), pruning, sparsity, pruned.size, dense.size, row["pies"],
                 time.time() - tick)
        return row

    def intervals(self, pruning: str, sparsity: float, dense: PopulationOutputs, pruned: PopulationOutputs,
                  pies: np.ndarray) -> dict:
        """The tests of one configuration (common.metrics.verdicts), as summary columns: the PIE count by the
        jackknife over seeds (its leave-one-seed-out masks written for the report's count differences and
        overlaps), the mean Q-Score shift and its excess on PIEs by the paired t (a pruned member against its own
        dense parent); and Hooker et al.'s class-level Welch test (its table written, the number of disparately
        affected classes returned)."""
        seeds, masks = leave_one_out_pies(dense.preds, pruned.preds, self.data.num_classes, dense.seeds,
                                          pruned.seeds)
        write_leave_one_out(self.paths.pie_leave_one_out(self.cfg.dataset, self.method, pruning, sparsity), seeds,
                            masks, pies)
        count = jackknife(pies.sum(), masks.sum(1), n=(dense.size, pruned.size)).as_columns("pies")
        out = {key: value for key, value in count.items() if key != "pies"}  # the count itself: summary_row's
        if dense.member_q is not None and pruned.member_q is not None:
            mean_q = lambda pop: dict(zip(pop.seeds, pop.member_q.mean(1)))  # noqa: E731
            out.update(seed_difference(mean_q(pruned), mean_q(dense)).as_columns("q_score_shift"))
            if pies.any() and (~pies).any():  # PIEs minus the rest, per member; < 0 in the excess: PIEs drop more
                gap = lambda pop: dict(zip(pop.seeds, pop.member_q[:, pies].mean(1)  # noqa: E731
                                           - pop.member_q[:, ~pies].mean(1)))
                out.update(seed_difference(gap(pruned), gap(dense)).as_columns("q_score_pie_excess"))
        labels = self.data.test_labels.numpy()
        test = class_disparity(dense.preds, pruned.preds, labels, self.data.num_classes)
        names = DATASET_REGISTRY[self.cfg.dataset].class_names
        write_csv(pd.DataFrame(dict(class_index=np.arange(self.data.num_classes), class_name=names, **test)),
                  self.paths.pie_class_disparity(self.cfg.dataset, self.method, pruning, sparsity))
        out["disparate_classes"] = int(test["disparate"].sum())
        return out

    def plot_configuration(self, table: pd.DataFrame, pruning: str, sparsity: float, dense: PopulationOutputs,
                           pruned: PopulationOutputs, dense_embedding: np.ndarray | None) -> None:
        title = self.title(pruning, sparsity, dense, pruned)
        labels, pies = table["true_label"].to_numpy(), table["pie"].to_numpy()
        classes = self.data.num_classes
        plot_pies_per_class(np.bincount(labels[pies], minlength=classes), np.bincount(labels, minlength=classes),
                            title, self.figure("pies_per_class", pruning, sparsity))
        shown = np.flatnonzero(pies)[:self.cfg.max_pie_images]
        plot_pie_images(self.data.test_images[torch.from_numpy(shown)].numpy(), labels[shown],
                        table["dense_modal_label"].to_numpy()[shown], table["pruned_modal_label"].to_numpy()[shown],
                        f"{title}: {len(shown)} of {pies.sum()} PIEs", self.figure("pie_images", pruning, sparsity))
        if self.cfg.plot_q_score:
            for score, label in SCORES.items():
                plot_score_scatter(table[f"dense_{score}"], table[f"pruned_{score}"], pies, label, sparsity, title,
                                   self.figure(score, pruning, sparsity))
        if dense_embedding is not None:
            self.plot_umap(table, pruning, sparsity, dense, pruned, dense_embedding)

    def plot_umap(self, table, pruning, sparsity, dense, pruned, dense_embedding) -> None:
        """Dense and pruned UMAP panels (model 0 of each population) plus their embeddings as npz.

        Colours default to the TRUE label: it is the same for both panels, so a class that the pruned encoder
        mixes into another shows up as mixed colours. The authors coloured by each population's modal predicted
        label (`--umap_color predicted`), which paints a misclassified point in the colour of the cluster it sits
        in and so hides exactly the confusions the figure is meant to show."""
        pruned_embedding = umap_embedding(pruned.features0, self.cfg)
        pies = table["pie"].to_numpy()
        true, dense_modal, pruned_modal = (table[c].to_numpy() for c in ("true_label", "dense_modal_label",
                                                                            "pruned_modal_label"))
        with atomic_path(self.figure("umap", pruning, sparsity, "npz")) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, dense_embedding=dense_embedding, pruned_embedding=pruned_embedding, true_labels=true,
                     dense_modal_labels=dense_modal, pruned_modal_labels=pruned_modal, pies=pies,
                     dense_model=dense.names[0], pruned_model=pruned.names[0])
        colors = (true, true) if self.cfg.umap_color == "true" else (dense_modal, pruned_modal)
        color_label = "true label" if self.cfg.umap_color == "true" else "modal predicted label of the population"
        seed = lambda name: name.rsplit("_seed", 1)[-1]
        titles = (f"dense (model seed {seed(dense.names[0])})",
                  f"{pruning} {sparsity:g} (model seed {seed(pruned.names[0])})")
        plot_umap_panels(dense_embedding, pruned_embedding, colors[0], colors[1], pies, self.data.num_classes,
                         titles, color_label, f"UMAP of test representations, {display_name(self.method)} "
                         f"{self.cfg.dataset} (x = PIE)", self.figure("umap", pruning, sparsity))

    def overlaps_between_prunings(self, pie_sets: dict) -> pd.DataFrame:
        """PIEs shared by each pair of pruning methods at the same sparsity: table rows and per-class figures."""
        labels = self.data.test_labels.numpy()
        rows = []
        for sparsity in sorted({s for _, s in pie_sets}):
            at_s = {p: mask for (p, s), mask in pie_sets.items() if s == sparsity}
            for row in pairwise_overlaps(at_s):
                rows.append(dict(method=display_name(self.method), sparsity=sparsity, **row))
                per_class = per_class_overlap(at_s[row["a"]], at_s[row["b"]], labels, self.data.num_classes)
                plot_overlap_per_class(per_class, row["a"], row["b"],
                                       f"{display_name(self.method)} {self.cfg.dataset}: PIEs of {row['a']} vs "
                                       f"{row['b']} at sparsity {sparsity:g}",
                                       self.figure("overlaps", f"{row['a']}_vs_{row['b']}", sparsity))
        return pd.DataFrame(rows, columns=["method", "sparsity", "a", "b", "size_a", "size_b", "common",
                                           "unique_a", "unique_b", "jaccard"])

    def compare_methods(self, pie_sets: dict) -> pd.DataFrame | None:
        """Supervised vs SupCon PIEs at the same pruning method and sparsity, when the other method's dense and
        pruned populations are on disk (their predictions come from that method's cache when it is current)."""
        other = next(method for method in METHODS if method != self.method)  # the study's other learning method
        populations = self.context.populations(other)
        by_tag = {(p, sparsity_tag(s)): members for (p, s), members in populations.items()}
        shared = [key for key in pie_sets if (key[0], sparsity_tag(key[1])) in by_tag]
        if ("dense", "0") not in by_tag or not shared:
            log.info("no %s populations matching these configurations on disk: supervised vs SupCon comparison "
                     "skipped", other)
            return None
        k, with_features = self.cfg.models_number, self.cfg.with_features
        # with the features this stage uses, so that the other method's own PIE stage finds them in the cache
        other_dense = self.outputs(first_members(by_tag[("dense", "0")], k, f"{other} dense"), with_features)
        labels = self.data.test_labels.numpy()
        rows = []
        for pruning, sparsity in shared:
            members = first_members(by_tag[(pruning, sparsity_tag(sparsity))], k, f"{other} {pruning} {sparsity:g}")
            other_pruned = self.outputs(members, with_features)
            other_pies = modal_labels(other_dense.preds, self.data.num_classes) != \
                modal_labels(other_pruned.preds, self.data.num_classes)
            pies = {self.method: pie_sets[(pruning, sparsity)], other: other_pies}
            sup, supcon = pies["supervised"], pies["supcon"]
            rows += [dict(pruning=pruning, sparsity=sparsity, **row)
                     for row in pairwise_overlaps({"supervised": sup, "SupCon": supcon})]
            plot_overlap_per_class(per_class_overlap(sup, supcon, labels, self.data.num_classes), "supervised",
                                   "SupCon", f"{self.cfg.dataset}: PIEs of supervised vs SupCon, {pruning} "
                                   f"{sparsity:g}", self.paths.pie_comparison(self.cfg.dataset, pruning, sparsity))
        return upsert_csv(self.paths.pie_comparison(self.cfg.dataset), pd.DataFrame(rows), ["pruning", "sparsity"])


def main(method: str, argv=None) -> pd.DataFrame:
    """sup_pie_kmodels_detection.py / clr_pie_kmodels_detection.py."""
    return analyse(method, *parse(method, argv))


def analyse(method: str, cfg: PieConfig, run: RunConfig) -> pd.DataFrame:
    """Run the stage for one learning method; returns the summary table (also written to summary.csv)."""
    started = time.time()
    validate(cfg)
    context = AnalysisContext(method, cfg.dataset, cfg.arch, run.preset, CortiPaths.at(run.output_root),
                              preset_config(method, run.preset).gmp_schedule, cfg.allow_missing_members)
    selection = context.select(cfg.pruning_methods, cfg.pruning_percentages, cfg.models_number)
    paths = context.paths
    folders = [paths.pies_dir(cfg.dataset, method), paths.log_dir(cfg.dataset, method)]
    folders += [paths.pie_comparison(cfg.dataset).parent] if cfg.compare else []
    data, device = context.start(folders, "pie_kmodels_detection", run.data_dir, run.cuda_device, selection)
    stage = Stage(cfg, context, data, device)
    dense = stage.outputs(first_members(selection.dense, cfg.models_number, f"{context.name} dense"),
                          cfg.with_features)
    dense_embedding = umap_embedding(dense.features0, cfg) if cfg.plot_umap else None
    rows, pie_sets = [], {}
    with progress(len(selection.pruned), f"{context.name} PIEs", run.progress, unit="population") as bar:
        for (pruning, sparsity), members in selection.pruned.items():
            rows.append(stage.configuration(pruning, sparsity, members, dense, dense_embedding, pie_sets))
            bar.update(1)
    summary = upsert_csv(paths.pie_summary(cfg.dataset, method), pd.DataFrame(rows), ["pruning", "sparsity"])
    plot_pies_vs_sparsity(summary, f"{display_name(method)} {cfg.dataset} {cfg.arch}",
                          stage.figure("pies_vs_sparsity"))
    upsert_csv(paths.pie_overlaps(cfg.dataset, method), stage.overlaps_between_prunings(pie_sets),
               ["sparsity", "a", "b"])
    if cfg.compare:
        stage.compare_methods(pie_sets)
    log.info("PIE stage done in %.1fs: %s", time.time() - started, paths.pies_dir(cfg.dataset, method))
    return summary
