"""Every file and folder the toolkit reads or writes is named here, and nowhere else.

Layout under the output root (the repository folder unless `--output_root` says otherwise):

    models/<dataset>/<supervised|SupCon>/<model name>[_encoder|_classifier].safetensors   finished models
    models/<dataset>/<supervised|SupCon>/.state/<run>.pt                               resumable run state
    models/<dataset>/<supervised|SupCon>/.rewind/<model name>@<phase>@<step>.safetensors  rewind points
    logs/<dataset>/<supervised|SupCon>/<model name>.csv|.png, <script>_<time>.log      curves and logs
    pies/<dataset>/<SupCon|supervised>/...                                              analysis results

Corti et al.'s models live there; another study's under models/<dataset>/<study>/<supervised|SupCon>/ (and
logs/<dataset>/<study>/…), its results under pies/<dataset>/<study>/.

`python -m common.paths --mkdirs` creates the top-level folders (setup.sh calls it).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from common.spec import DEFAULT_STUDY, METHOD_DIRS, ModelSpec, sparsity_tag

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = REPO_ROOT / "figures"


def data_folder(data_dir: str) -> Path:
    """Where datasets live: `--data_dir` as given (relative to the working folder, as any path typed), or the
    repository's data/ folder, whatever --output_root says (one copy of a dataset serves every output root)."""
    return Path(data_dir) if data_dir else REPO_ROOT / "data"


@dataclass(frozen=True)
class Paths:
    root: Path = REPO_ROOT

    @classmethod
    def at(cls, output_root: str) -> "Paths":
        """The paths under `--output_root` (empty: the repository folder)."""
        return cls(Path(output_root) if output_root else REPO_ROOT)

    def smoke(self) -> "Paths":
        """Where `reproduce.py --smoke` writes: apart, so that its few-step models never meet a real run's."""
        return Paths(self.root / "smoke")

    @property
    def root_flag(self) -> str:
        """' --output_root R' for a command that must write here, '' for the repository folder."""
        return "" if self.root.resolve() == REPO_ROOT else f" --output_root {self.root}"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pies(self) -> Path:
        return self.root / "pies"

    def top_level_dirs(self) -> list[Path]:
        return [self.models, self.logs, self.pies, self.root / "data"]

    # ---- models -------------------------------------------------------------------------------
    def model_dir(self, dataset: str, method: str, study: str = DEFAULT_STUDY) -> Path:
        return self.models / dataset / _study_folder(study) / METHOD_DIRS[method]

    def checkpoint(self, spec: ModelSpec, part: str = "model") -> Path:
        suffix = "" if part == "model" else f"_{part}"
        return self.model_dir(spec.dataset, spec.method, spec.study) / f"{spec.name}{suffix}.safetensors"

    def rewind_point(self, spec: ModelSpec, key: str) -> Path:
        """A member's rewind point '<phase>@<step>' (weights, buffers, generator, data order; hooks.Snapshot)."""
        return self.model_dir(spec.dataset, spec.method, spec.study) / ".rewind" / f"{spec.name}@{key}.safetensors"

    def checkpoints(self, spec: ModelSpec) -> list[Path]:
        return [self.checkpoint(spec, part) for part in spec.parts]

    def state_dir(self, dataset: str, method: str, study: str = DEFAULT_STUDY) -> Path:
        """Resumable states of unfinished populations: <run name>.pt, deleted when the population finishes."""
        return self.model_dir(dataset, method, study) / ".state"

    def failed_checkpoint(self, spec: ModelSpec) -> Path:
        """Last good state of a member whose loss turned non-finite (never loaded as a finished model)."""
        return self.model_dir(spec.dataset, spec.method, spec.study) / ".failed" / f"{spec.name}.safetensors"

    # ---- logs ---------------------------------------------------------------------------------
    def log_dir(self, dataset: str, method: str, study: str = DEFAULT_STUDY) -> Path:
        return self.logs / dataset / _study_folder(study) / METHOD_DIRS[method]

    def metrics_csv(self, spec: ModelSpec) -> Path:
        return self.log_dir(spec.dataset, spec.method, spec.study) / f"{spec.name}_metrics.csv"

    def record_csv(self, spec: ModelSpec, table: str) -> Path:
        """A per-epoch table a hook recorded during training (TrainState.records), e.g. natural sparsity."""
        return self.log_dir(spec.dataset, spec.method, spec.study) / f"{spec.name}_{table}.csv"

    def curves_png(self, spec: ModelSpec) -> Path:
        return self.log_dir(spec.dataset, spec.method, spec.study) / f"{spec.name}_curves.png"

    def models_csv(self, dataset: str | None = None, method: str | None = None) -> Path:
        """One row per model on disk (reproduce.py --list): all of them, or one (dataset, method)'s."""
        return self.logs / "models.csv" if dataset is None else self.log_dir(dataset, method) / "models.csv"

    def log_file(self, dataset: str, method: str, script: str, study: str = DEFAULT_STUDY) -> Path:
        """<script>_<time>.log; inside a Slurm job also its job id, so tasks starting in the same second log apart."""
        stamp = time.strftime("%Y%m%d_%H%M%S")
        job = os.environ.get("SLURM_JOB_ID")
        return self.log_dir(dataset, method, study) / f"{script}_{stamp}{f'_job{job}' if job else ''}.log"

    # ---- another study's results ------------------------------------------------------------------
    def study_dir(self, dataset: str, study: str) -> Path:
        """pies/<dataset>/<study>/: the tables, figures and report of a study other than Corti et al.'s."""
        return self.pies / dataset / study

    def study_file(self, dataset: str, study: str, name: str) -> Path:
        """One table, figure or report of a study (`name` with its extension, e.g. 'summary.csv')."""
        return self.study_dir(dataset, study) / name

    # ---- analyses -----------------------------------------------------------------------------
    def pies_dir(self, dataset: str, method: str) -> Path:
        return self.pies / dataset / METHOD_DIRS[method]

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


def _study_folder(study: str) -> str:
    """'' for Corti et al.'s models (where they have always been), the study's name for another study's."""
    return "" if study == DEFAULT_STUDY else study


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the toolkit's output folders.")
    parser.add_argument("--mkdirs", action="store_true", help="create models/, logs/, pies/ and data/")
    parser.add_argument("--output_root", default=str(REPO_ROOT), help="root under which the folders live")
    args = parser.parse_args()
    paths = Paths(Path(args.output_root))
    for folder in paths.top_level_dirs():
        if args.mkdirs:
            folder.mkdir(parents=True, exist_ok=True)
        print(folder)


if __name__ == "__main__":
    main()
