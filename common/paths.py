"""Every file and folder the toolkit reads or writes is named here, and nowhere else.

Layout under the output root (the repository folder unless `--output_root` says otherwise):

    models/<dataset>[/<study>]/<Method>/<model name>[_encoder|_classifier].safetensors   finished models
    models/<dataset>[/<study>]/<Method>/.state/<run>.pt                                  resumable run state
    models/<dataset>[/<study>]/<Method>/.rewind/<model name>@<phase>@<step>.safetensors  rewind points
    logs/<dataset>[/<study>]/<Method>/<model name>.csv|.png, <script>_<time>.log         curves and logs
    pies/<dataset>/...                                                                    results

<Method> is the objective's folder name (common.engine.objectives: supervised, SupCon, RotNet …). The first
study's models (Corti et al.'s) have no <study> folder; another study's models and logs do, and its results go
under pies/<dataset>/<study>/. A study names its own result files in its own paths module (Corti et al.'s PIE and
depth results: common.studies.corti2022.paths).

`python -m common.paths --mkdirs` creates the top-level folders (setup.sh calls it).
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from common.engine.objectives import METHODS
from common.spec import ModelSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = REPO_ROOT / "figures"


@dataclass(frozen=True)
class Paths:
    root: Path = REPO_ROOT

    @classmethod
    def at(cls, output_root: str) -> "Paths":
        """The paths under `--output_root` (empty: the repository folder)."""
        return cls(Path(output_root) if output_root else REPO_ROOT)

    def smoke(self) -> "Paths":
        """Where `reproduce.py --smoke` writes: apart, so that its few-step models never meet a real run's."""
        return type(self)(self.root / "smoke")

    @property
    def output_root(self) -> str:
        """What --output_root says to write here: '' for the repository folder."""
        return "" if self.root.resolve() == REPO_ROOT else str(self.root)

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
    def model_dir(self, dataset: str, method: str, study: str = "") -> Path:
        return self.models / dataset / study / METHODS[method].folder

    def checkpoint(self, spec: ModelSpec, part: str = "model") -> Path:
        suffix = "" if part == "model" else f"_{part}"
        return self.model_dir(spec.dataset, spec.method, spec.study) / f"{spec.name}{suffix}.safetensors"

    def rewind_point(self, spec: ModelSpec, key: str) -> Path:
        """A member's rewind point '<phase>@<step>' (weights, buffers, generator, data order; hooks.Snapshot)."""
        return self.model_dir(spec.dataset, spec.method, spec.study) / ".rewind" / f"{spec.name}@{key}.safetensors"

    def checkpoints(self, spec: ModelSpec) -> list[Path]:
        return [self.checkpoint(spec, part) for part in spec.parts]

    def state_dir(self, dataset: str, method: str, study: str = "") -> Path:
        """Resumable states of unfinished populations: <run name>.pt, deleted when the population finishes."""
        return self.model_dir(dataset, method, study) / ".state"

    def failed_checkpoint(self, spec: ModelSpec) -> Path:
        """Last good state of a member whose loss turned non-finite (never loaded as a finished model)."""
        return self.model_dir(spec.dataset, spec.method, spec.study) / ".failed" / f"{spec.name}.safetensors"

    # ---- logs ---------------------------------------------------------------------------------
    def log_dir(self, dataset: str, method: str, study: str = "") -> Path:
        return self.logs / dataset / study / METHODS[method].folder

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

    def log_file(self, dataset: str, method: str, script: str, study: str = "") -> Path:
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
