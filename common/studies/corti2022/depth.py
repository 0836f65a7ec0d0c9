"""`sup_prediction_depth.py` / `clr_prediction_depth.py`: prediction depth of every test example, dense vs pruned.

For each population (the dense one and every pruned configuration on disk) the first `--prediction_depth_models`
members (by seed) get one k-NN probe (k=`--knn_k`, Euclidean, uniform votes) per hidden representation of the
encoder (global-average-pooled; WRN-16-2 has the authors' 16 probe points, WRN-10-1 has 10). Each probe's
support set is the training set's representation under that model, with the ground-truth training labels,
fitted once per model (the authors refit the dense probes again for every configuration, paper_recipe C.10).

Depth definition (common.prediction_depth, 0..L scale). An example's depth is the number of leading probes
after which every probe agrees with the reference label: 0 when every probe agrees, L when even the last one
disagrees.
  * `--depth_reference final_prediction` (default, Baldock et al. 2021): the reference is the network's own
    final prediction (argmax of its logits; SupCon: its linear classifier on the encoder output).
  * `--depth_reference true_label` (Corti et al.'s code): the reference is the ground-truth test label.
Scale vs the authors' code (utils/prediction_depth.py, inference_knn): they record 1 + the 0-based index of the
last disagreeing probe, and 1 when no probe disagrees, i.e. max(ours, 1): equal to ours for every example that
some probe gets wrong, 1 instead of 0 for the examples no probe gets wrong (so their means are higher than ours
by the share of (model, example) pairs at depth 0). Their re-plotting function
(plot_loaded_prediction_depth) adds 1 again, so the values on their re-plotted scatters are ours + 1 for most
examples (paper_recipe C.10).

Support set: the un-augmented training images by default. `--augmented_support` reproduces the authors'
support set: each training image once through the supervised augmentation (random crop, horizontal flip and,
when the model's recipe has it, vertical flip) drawn from a generator seeded with the model's seed.

PIEs are recomputed here from the predictions of the first `--models_number` members of the dense and pruned
populations (the authors' PD script does the same with 30 + 30 models), so this stage does not depend on the PIE
stage; when the PIE stage's per-example table exists it is cross-checked and a mismatch is logged as a warning.

Outputs, under pies/<dataset>/<SupCon|supervised>/prediction_depth/ (variant = reference + k [+ augmented]):
  depth_<pruning>_s<sparsity>_<variant>.csv   one row per test example: index, true_label, pie, modal labels,
                                              dense/pruned mean depth, per-model depths (depth_dense_seed<n>, ...)
  prediction_depth_summary.csv                one row per (pruning, sparsity, variant): mean/std of the mean depth
                                              for PIEs and for the rest, dense and pruned
  scatter_…png, histogram_…png, depth_vs_sparsity_<variant>.png     the figures
  cache/<model>_probes_k<k>_<support>.npz     per-model probe predictions: a rerun skips finished models
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.cli import check_device, config_flags, parse_flags, preset_values
from common.errors import UsageError
from common.config import help_field
from common.data import Dataset
from common.data.augment import SupervisedAugment
from common.engine.inference import predict
from common.io import atomic_path, upsert_csv, write_csv
from common.log import progress
from common.metrics.knn import knn_predict_layers
from common.metrics.pies import find_pies, modal_labels
from common.metrics.prediction_depth import prediction_depth
from common.metrics.verdicts import one_sample
from common.studies.corti2022.paths import CortiPaths
from common.plots.depth import plot_depth_histograms, plot_depth_scatter, plot_depth_vs_sparsity
from common.engine.objectives import display_name
from common.spec import ModelSpec, sparsity_tag
from common.studies.corti2022.commands import PRUNED, retrain_command, script
from common.studies.corti2022.analysis import AnalysisContext, validate_selection
from common.studies.corti2022.config import ARCHS, DATASETS, preset_config
from common.studies.corti2022.pies import data_fingerprint, population_outputs
from common.zoo import checkpoint_stamp, load_population

log = logging.getLogger("prune")

REFERENCES = ("final_prediction", "true_label")


@dataclass(frozen=True)
class DepthConfig:
    preset: str = help_field("paper", "paper (cifar10, wrn16_2), demo (digits, wrn10_1) or study "
                                      "(fashion_mnist, wrn10_1)", choices=("paper", "demo", "study"))
    dataset: str | None = help_field(None, f"dataset of the models, one of {DATASETS}", choices=DATASETS)
    arch: str | None = help_field(None, f"architecture of the models, one of {ARCHS}", choices=ARCHS)
    data_dir: str = help_field("", "folder holding (or receiving) the dataset, e.g. cifar-10-batches-py "
                                        "(default: data/ in the repository folder)")
    output_root: str = help_field("", "root of models/, logs/ and pies/ (default: the repository folder)")
    cuda_device: int = help_field(0, "GPU index; without CUDA the script says so and runs on the CPU")
    knn_k: int = help_field(30, "neighbours of each k-NN probe (the authors' and Baldock's k)")
    prediction_depth_models: int = help_field(5, "models per population (first seeds) whose depths are averaged")
    models_number: int = help_field(30, "models per population (first seeds) whose modal predictions define PIEs")
    pruning_methods: tuple = help_field((), f"pruning methods to analyse, from {PRUNED}; empty = all on "
                                            "disk", nargs="*", item=str)
    pruning_percentages: tuple = help_field((), "sparsities to analyse, comma or space separated; empty = all on "
                                                "disk", nargs="*", item=float)
    depth_reference: str = help_field("final_prediction", "what the probes must agree with: final_prediction (the "
                                      "network's own prediction, Baldock) or true_label (the authors' code)",
                                      choices=REFERENCES)
    augmented_support: bool = help_field(False, "fit the probes on augmented training images, as the authors")
    per_model_depths: bool = help_field(True, "add each model's depth as a column of the per-example tables")
    cache: bool = help_field(True, "keep per-model probe predictions (npz) so reruns skip finished models")
    batch_size: int = help_field(1024, "images per forward pass")
    progress: bool = help_field(True, "tqdm progress bars")
    allow_missing_members: bool = help_field(False, "compare what remains of a population some of whose model files "
                                                    "are unreadable (the summary's *_models columns say how many); "
                                                    "without it such a population stops the stage, naming the files "
                                                    "and the command that retrains them")

    @property
    def support(self) -> str:
        return "augmented" if self.augmented_support else "plain"

    @property
    def variant(self) -> str:
        """File-name tag of everything that changes the numbers apart from the models."""
        return f"{self.depth_reference}_k{self.knn_k}" + ("_augmented" if self.augmented_support else "")


@dataclass
class PopulationDepth:
    """Per population: predictions of the PIE members, and the depths of the depth members (first seeds)."""

    specs: list[ModelSpec]  # the depth members
    preds: np.ndarray  # [K, N] argmax predictions of the PIE members (the first models_number)
    probe_preds: np.ndarray  # [P, L, N] k-NN probe predictions of the depth members
    depths: np.ndarray  # [P, N] int, 0..L

    @property
    def num_probes(self) -> int:
        return self.probe_preds.shape[1]


# ---- configuration -------------------------------------------------------------------------------

# The populations a preset analyses (those `reproduce.py --preset P` trains: its PRESETS' models_number and
# prediction_depth_models); the dataset and arch are those its models are trained on.
PRESETS = {"paper": {}, "demo": dict(models_number=3, prediction_depth_models=3),
           "study": dict(models_number=5, prediction_depth_models=3)}


def preset_depth(method: str, preset: str = "paper", **overrides) -> DepthConfig:
    cfg = replace(DepthConfig(), **{**PRESETS[preset], **overrides, "preset": preset})
    recipe = preset_config(method, preset)  # the models' dataset and arch under that preset
    return replace(cfg, dataset=cfg.dataset or recipe.dataset, arch=cfg.arch or recipe.arch)


def parse(method: str, argv=None) -> DepthConfig:
    shown = {preset: preset_values(preset_depth(method, preset)) for preset in PRESETS}
    [given] = parse_flags(script(method, "prediction_depth"), __doc__, argv, DepthConfig, presets=shown)
    cfg = preset_depth(method, **given)
    check_device(cfg.cuda_device)
    return cfg


def depth_argv(method: str, cfg: DepthConfig) -> list[str]:
    """The flags that ask for `cfg` (parse reads them back)."""
    return ["--preset", cfg.preset, *config_flags(cfg, preset_depth(method, cfg.preset), skip=("preset", "output_root")),
            *(["--output_root", cfg.output_root] if cfg.output_root else [])]


def validate(cfg: DepthConfig) -> None:
    if cfg.knn_k < 1:
        raise UsageError(f"--knn_k {cfg.knn_k}: a k-NN probe needs k >= 1 (the paper uses 30)")
    if cfg.prediction_depth_models < 1:
        raise UsageError(f"--prediction_depth_models {cfg.prediction_depth_models}: need at least 1 model per "
                         f"population")
    if cfg.models_number < 1:
        raise UsageError(f"--models_number {cfg.models_number}: need at least 1 model per population for the PIEs")
    if cfg.batch_size < 1:
        raise UsageError(f"--batch_size {cfg.batch_size}: must be >= 1")
    validate_selection(cfg.pruning_methods, cfg.pruning_percentages)


# ---- computing ----------------------------------------------------------------------------------

def support_augment(spec: ModelSpec, meta: dict, data: Dataset) -> tuple[SupervisedAugment, dict]:
    """The authors' augmenting train loader, one pass in fixed order: the model's own supervised augmentation
    with parameters drawn from a generator seeded with the model's seed (reproducible per model)."""
    vflip = meta.get("config", {}).get("vertical_flip", True)
    aug = SupervisedAugment(padding=data.image_size // 8, vertical_flip=0.5 if vflip else 0.0)
    generator = torch.Generator().manual_seed(spec.seed)
    return aug, aug.sample(len(data.train_images), data.image_size, generator)


@torch.no_grad()
def augmented_probes(pop, images, normalize, augments, batch: int) -> list[torch.Tensor]:
    """Like predict(pop, images, normalize, 'hidden')[1], but every member sees its own augmented copy."""
    pop.eval()
    chunks = []
    for s in range(0, len(images), batch):
        part = images[s:s + batch].to(pop.device)
        views = torch.stack([aug.apply(part, {k: v[s:s + batch] for k, v in params.items()})
                             for aug, params in augments])
        chunks.append(pop(normalize(views), "hidden", shared_input=False)[1])
    return [torch.cat([c[layer].float() for c in chunks], dim=1) for layer in range(len(chunks[0]))]


def probe_predictions(paths: CortiPaths, specs: list[ModelSpec], data: Dataset, cfg: DepthConfig,
                      device: torch.device) -> np.ndarray:
    """[P, L, N] k-NN probe predictions on the test set for `specs`; the hidden representations of all of them
    come from one batched pass (members stacked), the probes run member by member on the device."""
    pop, metas = load_population(paths, specs, device, data.num_classes, retrain=retrain_command)
    if cfg.augmented_support:
        augments = [support_augment(spec, meta, data) for spec, meta in zip(specs, metas)]
        train_probes = augmented_probes(pop, data.train_images, data.normalize, augments, cfg.batch_size)
    else:
        train_probes = predict(pop, data.train_images, data.normalize, "hidden", cfg.batch_size)[1]
    test_probes = predict(pop, data.test_images, data.normalize, "hidden", cfg.batch_size)[1]
    del pop
    out = [knn_predict_layers([t[i] for t in train_probes], data.train_labels, [q[i] for q in test_probes],
                              cfg.knn_k, device=device).cpu().numpy() for i in range(len(specs))]
    return np.stack(out)


def model_source(paths: CortiPaths, spec: ModelSpec) -> str:
    """Identifies the checkpoint files a cache entry was computed from (a retrained model invalidates it)."""
    return ";".join(f"{size}:{mtime}" for _, size, mtime in checkpoint_stamp(paths, [spec]) or [])


def read_cache(paths: CortiPaths, spec: ModelSpec, cfg: DepthConfig, n_test: int) -> np.ndarray | None:
    path = paths.depth_cache(spec, cfg.support, cfg.knn_k)
    if not cfg.cache or not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            probes, source = stored["probe_preds"], str(stored["source"])
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable cache %s (%s)", path, err)
        return None
    if source != model_source(paths, spec) or probes.ndim != 2 or probes.shape[1] != n_test:
        return None
    return probes.astype(np.int64)


def write_cache(paths: CortiPaths, spec: ModelSpec, cfg: DepthConfig, probes: np.ndarray) -> None:
    if not cfg.cache:
        return
    with atomic_path(paths.depth_cache(spec, cfg.support, cfg.knn_k)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, probe_preds=probes.astype(np.int16), source=np.array(model_source(paths, spec)))


def member_predictions(paths: CortiPaths, members: list[ModelSpec], data: Dataset, cfg: DepthConfig,
                       device: torch.device) -> np.ndarray:
    """[K, N] test predictions of `members`, read from the PIE stage's cache when it holds exactly these members
    (reproduce.py runs that stage first: the pass is not repeated), else computed and cached for the next stage.
    A member that cannot be read stops this stage with the loader's one-line error (the PIE stage leaves it out)."""
    outputs = population_outputs(paths, members, data, device, False, cfg.batch_size, data_fingerprint(data),
                                 cfg.allow_missing_members)
    if outputs.names != tuple(spec.name for spec in members):
        load_population(paths, members, device, data.num_classes, retrain=retrain_command)  # raises the CheckpointError naming the file
    return outputs.preds


def population_depth(paths: CortiPaths, specs: list[ModelSpec], data: Dataset, cfg: DepthConfig,
                     device: torch.device) -> PopulationDepth:
    started = time.time()
    depth_specs = specs[:cfg.prediction_depth_models]
    if len(depth_specs) < cfg.prediction_depth_models:
        log.warning("%s has %d finished models, fewer than --prediction_depth_models %d: averaging over %d",
                    _label(specs[0]), len(specs), cfg.prediction_depth_models, len(specs))
    all_preds = member_predictions(paths, specs[:max(cfg.models_number, len(depth_specs))], data, cfg, device)
    n_test = len(data.test_labels)
    probes = {spec: read_cache(paths, spec, cfg, n_test) for spec in depth_specs}
    missing = [spec for spec, p in probes.items() if p is None]
    if missing:
        for spec, p in zip(missing, probe_predictions(paths, missing, data, cfg, device)):
            write_cache(paths, spec, cfg, p)
            probes[spec] = p
    probe_preds = np.stack([probes[spec] for spec in depth_specs])
    true_labels = data.test_labels.cpu().numpy()
    references = all_preds[:len(depth_specs)] if cfg.depth_reference == "final_prediction" \
        else np.broadcast_to(true_labels, (len(depth_specs), n_test))
    depths = np.stack([prediction_depth(p, r) for p, r in zip(probe_preds, references)])
    preds = all_preds[:cfg.models_number]
    log.info("%s: %d models for PIEs, depth of %d (%d from cache), %d probes, %.1fs", _label(specs[0]), len(preds),
             len(depth_specs), len(depth_specs) - len(missing), probe_preds.shape[1], time.time() - started)
    return PopulationDepth(depth_specs, preds, probe_preds, depths)


# ---- tables -------------------------------------------------------------------------------------

def example_table(dense: PopulationDepth, pruned: PopulationDepth, true_labels: np.ndarray, pies: np.ndarray,
                  num_classes: int, per_model: bool) -> pd.DataFrame:
    columns = dict(index=np.arange(len(true_labels)), true_label=true_labels, pie=pies,
                   dense_modal_label=modal_labels(dense.preds, num_classes),
                   pruned_modal_label=modal_labels(pruned.preds, num_classes),
                   depth_dense_mean=dense.depths.mean(0), depth_pruned_mean=pruned.depths.mean(0))
    if per_model:
        for name, pop in (("dense", dense), ("pruned", pruned)):
            columns.update({f"depth_{name}_seed{spec.seed}": d for spec, d in zip(pop.specs, pop.depths)})
    return pd.DataFrame(columns)


def summary_row(method: str, cfg: DepthConfig, key: tuple, dense: PopulationDepth, pruned: PopulationDepth,
                pies: np.ndarray) -> dict:
    """Mean and std over examples of the per-example mean depth, for PIEs and the rest (nan when empty)."""
    row = dict(method=display_name(method), arch=cfg.arch, dataset=cfg.dataset, pruning=key[0], sparsity=key[1],
               reference=cfg.depth_reference, knn_k=cfg.knn_k, support=cfg.support, num_probes=dense.num_probes,
               depth_models_dense=len(dense.specs), depth_models_pruned=len(pruned.specs),
               pie_models_dense=len(dense.preds), pie_models_pruned=len(pruned.preds),
               examples=len(pies), pies=int(pies.sum()))
    for name, pop in (("dense", dense), ("pruned", pruned)):
        mean_depth = pop.depths.mean(0)
        for group, mask in (("pies", pies), ("rest", ~pies)):
            values = mean_depth[mask]
            row[f"depth_{name}_{group}_mean"] = float(values.mean()) if mask.any() else float("nan")
            row[f"depth_{name}_{group}_std"] = float(values.std()) if mask.any() else float("nan")
        if pies.any() and (~pies).any():  # PIEs minus the rest, per member: a one-sample t over the members
            gaps = pop.depths[:, pies].mean(1) - pop.depths[:, ~pies].mean(1)
            row.update(one_sample(gaps).as_columns(f"depth_{name}_gap"))
    return row


def cross_check_pies(paths: CortiPaths, cfg: DepthConfig, method: str, key: tuple, pies: np.ndarray) -> None:
    """Compare with the PIE stage's per-example table when it exists; a mismatch is a warning (that stage may
    use another number of models)."""
    locate = getattr(paths, "pie_examples", None)
    path = locate(cfg.dataset, method, *key) if locate else None
    if path is None or not Path(path).is_file():
        return
    frame = pd.read_csv(path)
    column = next((c for c in frame.columns if c.lower() in ("pie", "is_pie")), None)
    if column is None or len(frame) != len(pies):
        log.warning("cannot cross-check PIEs with %s (no 'pie' column or %d rows for %d examples)", path,
                    len(frame), len(pies))
        return
    if "index" in frame.columns:
        frame = frame.sort_values("index")
    differ = int((frame[column].astype(bool).to_numpy() != pies).sum())
    if differ:
        log.warning("%s at %s: %d examples have another PIE flag in %s (that stage may use another number of "
                    "models)", key[0], sparsity_tag(key[1]), differ, path)
    else:
        log.info("PIE flags agree with the PIE stage's %s", path)


# ---- entry point --------------------------------------------------------------------------------

def main(method: str, argv=None) -> pd.DataFrame:
    """sup_prediction_depth.py / clr_prediction_depth.py."""
    return analyse(method, parse(method, argv))


def analyse(method: str, cfg: DepthConfig) -> pd.DataFrame:
    validate(cfg)
    context = AnalysisContext(method, cfg.dataset, cfg.arch, cfg.preset, CortiPaths.at(cfg.output_root),
                              preset_config(method, cfg.preset).gmp_schedule, cfg.allow_missing_members)
    selection = context.select(cfg.pruning_methods, cfg.pruning_percentages, cfg.models_number)  # before any download
    paths = context.paths
    folders = [paths.depth_dir(cfg.dataset, method), paths.log_dir(cfg.dataset, method)]
    data, device = context.start(folders, "prediction_depth", cfg.data_dir, cfg.cuda_device, selection,
                                 check=lambda data: check_k(cfg, data))
    torch.backends.cuda.matmul.allow_tf32 = False  # the k-NN shortlist needs full float32 (common/metrics/knn.py)
    log.info("%s prediction depth (%s), device %s: dense + %d pruned populations, k=%d, %s support", context.name,
             cfg.depth_reference, device, len(selection.pruned), cfg.knn_k, cfg.support)
    data = data.to(device)
    true_labels = data.test_labels.cpu().numpy()
    started = time.time()
    rows = []
    with progress(1 + len(selection.pruned), f"{context.name} prediction depth", cfg.progress, unit="population") as bar:
        dense = population_depth(paths, selection.dense, data, cfg, device)
        bar.update(1)
        for key, specs in selection.pruned.items():
            pruned = population_depth(paths, specs, data, cfg, device)
            rows.append(compare(paths, cfg, method, key, dense, pruned, true_labels, data.num_classes))
            bar.update(1)
    key = ["arch", "pruning", "sparsity", "reference", "knn_k", "support"]
    summary = upsert_csv(paths.depth_summary(cfg.dataset, method), pd.DataFrame(rows), key)
    mine = summary[(summary["reference"] == cfg.depth_reference) & (summary["knn_k"] == cfg.knn_k)
                   & (summary["support"] == cfg.support) & (summary["arch"] == cfg.arch)]
    title = f"{display_name(method)} {cfg.arch} on {cfg.dataset}: prediction depth ({_reference_words(cfg)})"
    plot_depth_vs_sparsity(mine, title, paths.depth_summary_figure(cfg.dataset, method, cfg.variant))
    log.info("prediction depth done in %.1fs: %s", time.time() - started, paths.depth_dir(cfg.dataset, method))
    return summary


def check_k(cfg: DepthConfig, data: Dataset) -> None:
    if cfg.knn_k > len(data.train_labels):
        raise UsageError(f"--knn_k {cfg.knn_k}: larger than the {len(data.train_labels)} training images")


def compare(paths: CortiPaths, cfg: DepthConfig, method: str, key: tuple, dense: PopulationDepth,
            pruned: PopulationDepth, true_labels: np.ndarray, num_classes: int) -> dict:
    """PIEs and depths of one pruned population against the dense one: table, figures, summary row."""
    pies = find_pies(dense.preds, pruned.preds)
    cross_check_pies(paths, cfg, method, key, pies)
    table = example_table(dense, pruned, true_labels, pies, num_classes, cfg.per_model_depths)
    write_csv(table, paths.depth_examples(cfg.dataset, method, *key, cfg.variant))
    row = summary_row(method, cfg, key, dense, pruned, pies)
    draw_population(paths, cfg, method, key, dense, pruned, pies)
    log.info("%s s=%s: %d PIEs; mean depth dense PIEs %.2f rest %.2f | pruned PIEs %.2f rest %.2f", key[0],
             sparsity_tag(key[1]), row["pies"], row["depth_dense_pies_mean"], row["depth_dense_rest_mean"],
             row["depth_pruned_pies_mean"], row["depth_pruned_rest_mean"])
    return row


def draw_population(paths: CortiPaths, cfg: DepthConfig, method: str, key: tuple, dense: PopulationDepth,
                    pruned: PopulationDepth, pies: np.ndarray) -> None:
    title = (f"{display_name(method)} {cfg.arch} on {cfg.dataset}, {key[0]} {sparsity_tag(key[1])}: "
             f"prediction depth ({_reference_words(cfg)}, k={cfg.knn_k})")
    plot_depth_scatter(dense.depths.mean(0), pruned.depths.mean(0), pies, dense.num_probes,
                       f"mean depth, dense ({len(dense.specs)} models)",
                       f"mean depth, {key[0]} {sparsity_tag(key[1])} ({len(pruned.specs)} models)", title,
                       paths.depth_figure(cfg.dataset, method, "scatter", *key, cfg.variant))
    plot_depth_histograms(dense.depths, pruned.depths, pies, dense.num_probes,
                          f"{key[0]} {sparsity_tag(key[1])}", title,
                          paths.depth_figure(cfg.dataset, method, "histogram", *key, cfg.variant))


def _reference_words(cfg: DepthConfig) -> str:
    return "vs final prediction" if cfg.depth_reference == "final_prediction" else "vs true label"


def _label(spec: ModelSpec) -> str:
    return f"{display_name(spec.method)} {spec.pruning} s={sparsity_tag(spec.sparsity)}"
