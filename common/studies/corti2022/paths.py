"""Where Corti et al.'s analyses write, under pies/<dataset>/ as the authors' layout names it:

    pies/<dataset>/<SupCon|supervised>/summary.csv, examples/, cache/, leave_one_out/, class_disparity/, figures   PIEs
    pies/<dataset>/<SupCon|supervised>/prediction_depth/...                                                   depth
    pies/<dataset>/comparison/                                      supervised vs SupCon PIE overlaps
    pies/<dataset>/report.md                                        the study's report
    logs/<dataset>/<supervised|SupCon>/finetune_summary_<arch>_<pruning>.csv
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.engine.objectives import METHODS
from common.paths import Paths
from common.spec import ModelSpec, sparsity_tag


@dataclass(frozen=True)
class CortiPaths(Paths):
    """Paths under one output root, with the files of Corti et al.'s finetuning summaries and analyses."""

    def report(self, dataset: str) -> Path:
        return self.pies / dataset / "report.md"

    # ---- analyses -----------------------------------------------------------------------------
    def pies_dir(self, dataset: str, method: str) -> Path:
        return self.pies / dataset / METHODS[method].folder

    def finetune_summary(self, dataset: str, method: str, arch: str, pruning: str) -> Path:
        return self.log_dir(dataset, method) / f"finetune_summary_{arch}_{pruning}.csv"

    # ---- PIE analysis -------------------------------------------------------------------------
    def pie_summary(self, dataset: str, method: str) -> Path:
        return self.pies_dir(dataset, method) / "summary.csv"

    def pie_examples(self, dataset: str, method: str, pruning: str, sparsity: float) -> Path:
        """Per-example PIE flags, modal labels, agreement, accuracy (and scores) of one configuration (CSV)."""
        return self.pies_dir(dataset, method) / "examples" / f"pies_{pruning}_s{sparsity_tag(sparsity)}.csv"

    def pie_predictions(self, dataset: str, method: str, pruning: str, sparsity: float) -> Path:
        """Cached per-member predictions (and averaged scores) of one population, so reruns skip inference."""
        return self.pies_dir(dataset, method) / "cache" / f"predictions_{pruning}_s{sparsity_tag(sparsity)}.npz"

    def pie_leave_one_out(self, dataset: str, method: str, pruning: str, sparsity: float) -> Path:
        """The PIE masks with each seed left out of the dense and pruned populations (bits packed along examples),
        and the full mask: the jackknife behind the report's PIE-count and overlap intervals."""
        return self.pies_dir(dataset, method) / "leave_one_out" / f"pies_{pruning}_s{sparsity_tag(sparsity)}.npz"

    def pie_class_disparity(self, dataset: str, method: str, pruning: str, sparsity: float) -> Path:
        """Hooker et al.'s class-level Welch test, one row per class."""
        return self.pies_dir(dataset, method) / "class_disparity" / f"{pruning}_s{sparsity_tag(sparsity)}.csv"

    def pie_overlaps(self, dataset: str, method: str) -> Path:
        return self.pies_dir(dataset, method) / "overlaps.csv"

    def pie_figure(self, dataset: str, method: str, kind: str, pruning: str = "", sparsity: float | None = None,
                   ext: str = "png") -> Path:
        """pies/<dataset>/<method>/<kind>/<kind>_<pruning>_s<sparsity>.<ext>, or <kind>.<ext> for whole-method
        figures."""
        if sparsity is None:
            return self.pies_dir(dataset, method) / f"{kind}.{ext}"
        return self.pies_dir(dataset, method) / kind / f"{kind}_{pruning}_s{sparsity_tag(sparsity)}.{ext}"

    def pie_comparison(self, dataset: str, pruning: str = "", sparsity: float | None = None) -> Path:
        """Supervised vs SupCon PIE overlaps (either script writes them once both methods are on disk):
        the table without a configuration, else that configuration's per-class figure."""
        folder = self.pies / dataset / "comparison"
        if sparsity is None:
            return folder / "overlaps.csv"
        return folder / f"supervised_vs_SupCon_{pruning}_s{sparsity_tag(sparsity)}.png"

    # ---- prediction depth ---------------------------------------------------------------------
    def depth_dir(self, dataset: str, method: str) -> Path:
        return self.pies_dir(dataset, method) / "prediction_depth"

    def depth_examples(self, dataset: str, method: str, pruning: str, sparsity: float, variant: str) -> Path:
        """Per-example depths of one (pruning, sparsity) against the dense population; `variant` names the
        reference, k and support set (e.g. 'final_prediction_k30')."""
        return self.depth_dir(dataset, method) / f"depth_{pruning}_s{sparsity_tag(sparsity)}_{variant}.csv"

    def depth_figure(self, dataset: str, method: str, kind: str, pruning: str, sparsity: float, variant: str) -> Path:
        return self.depth_dir(dataset, method) / f"{kind}_{pruning}_s{sparsity_tag(sparsity)}_{variant}.png"

    def depth_summary(self, dataset: str, method: str) -> Path:
        return self.depth_dir(dataset, method) / "prediction_depth_summary.csv"

    def depth_summary_figure(self, dataset: str, method: str, variant: str) -> Path:
        return self.depth_dir(dataset, method) / f"depth_vs_sparsity_{variant}.png"

    def depth_cache(self, spec: ModelSpec, support: str, k: int) -> Path:
        """One model's k-NN probe predictions on the test set (reference-independent, so both depth variants
        reuse it)."""
        return self.depth_dir(spec.dataset, spec.method) / "cache" / f"{spec.name}_probes_k{k}_{support}.npz"


