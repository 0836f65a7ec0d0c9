"""What the stages share. Analyses: the run's context (paths, data, device, logging, preflight), the selection
of populations on disk with one line per missing one, and the "make it with …" commands. Training: packing
members into populations (resuming states left by another --population_size) and training them under one
progress bar. A stage module keeps only its own computing, tables and figures."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import torch

from common import checkpoint as ckpt, preflight
from common.cli import UsageError, select_device
from common.commands import make_command
from common.data import Dataset, load_dataset
from common.engine.loop import Trainer, execution_record
from common.engine.phase import Job
from common.engine.state import saved_members
from common.log import progress, setup_logging
from common.paths import Paths
from common.recipe import fingerprint, recipe_of
from common.provenance import member_fingerprint, read_metas, refuse_mixed, stale_parents
from common.spec import PRUNED, PRUNINGS, ModelSpec, sparsity_tag
from common.zoo import finished_specs, group_populations, save_population

log = logging.getLogger("prune")


def validate_selection(pruning_methods: tuple, sparsities: tuple) -> None:
    """The analyses' --pruning_methods / --pruning_percentages: known names, pruned sparsities in (0, 1)."""
    unknown = [p for p in pruning_methods if p not in PRUNED]
    if unknown:
        raise UsageError(f"--pruning_methods {unknown}: choose from {', '.join(PRUNED)}")
    bad = [s for s in sparsities if not 0.0 < s < 1.0]
    if bad:
        raise UsageError(f"--pruning_percentages {bad}: pruned sparsities lie in (0, 1), e.g. 0.5,0.9")


@dataclass
class Selection:
    """The dense population and the pruned ones an analysis compares with it, members sorted by seed."""

    dense: list[ModelSpec]
    pruned: dict[tuple, list[ModelSpec]]  # (pruning, sparsity) -> members
    warnings: list[str] = field(default_factory=list)  # one line per asked population that is not on disk
    train_subset: int = 0  # the dense models' training subset (0: all): what the k-NN probes take as support


@dataclass
class AnalysisContext:
    """One analysis run of one learning method on one (dataset, arch) under one output root."""

    method: str
    dataset: str
    arch: str
    preset: str
    paths: Paths
    gmp_schedule: str = "early"  # the recipe's default GMP window, suggested when no pruned population exists

    def command(self, pruning: str, sparsity: float, seeds: list[int], recipe: dict | None = None) -> str:
        """The complete command that makes a missing population of `seeds` under this run's preset, dataset, arch
        and output root (with the dense population's recipe, when the population is trained like it)."""
        return make_command(self.method, pruning, sparsity, self.dataset, self.arch, seeds, self.preset, recipe,
                            self.paths.root_flag)

    def populations(self, method: str | None = None) -> dict[tuple, list[ModelSpec]]:
        """{(pruning, sparsity): members} of the finished models on disk of `method` (default: this run's) made
        with the authors' recipe variants; controls with a name tag (finetune-representation, …) are listed by
        `reproduce.py --list`, not compared here."""
        specs = finished_specs(self.paths, self.dataset, method or self.method, self.arch)
        return group_populations([spec for spec in specs if not spec.knobs])

    def select(self, pruning_methods: tuple = (), sparsities: tuple = (), models_number: int = 30) -> Selection:
        """The dense population and the pruned ones asked (none asked: all on disk), their provenance checked.
        Asked populations that are missing become warnings; no dense or no pruned population at all is a
        UsageError naming the command."""
        groups = self.populations()
        where = f"{self.paths.model_dir(self.dataset, self.method)}"
        dense = groups.pop(("dense", 0.0), [])
        if not dense:
            raise UsageError(f"no dense {self.method} {self.arch} population on {self.dataset} in {where}"
                             f"{self._other_archs()}: train it with "
                             f"`{self.command('dense', 0.0, list(range(models_number)))}`")
        dense_recipe = recipe_of(read_metas(self.paths, dense[:1])[dense[0]])
        seeds = [spec.seed for spec in dense[:models_number]]
        make = lambda pruning, sparsity: self.command(  # noqa: E731 - GMP populations train like the dense one
            pruning, sparsity, seeds, dense_recipe if PRUNINGS[pruning].made_by == "training" else None)
        by_tag = {(p, sparsity_tag(s)): members for (p, s), members in groups.items()}
        methods = pruning_methods or sorted({p for p, _ in groups})
        wanted = sparsities or sorted({s for _, s in groups})
        pruned, warnings = {}, []
        for pruning in dict.fromkeys(methods):
            for sparsity in dict.fromkeys(wanted):
                members = by_tag.get((pruning, sparsity_tag(sparsity)))
                if members:
                    pruned[(pruning, members[0].sparsity)] = members
                elif pruning_methods or sparsities:
                    warnings.append(f"no {self.method} {pruning} population at sparsity {sparsity:g} in {where}: "
                                    f"skipped (make it with `{make(pruning, sparsity)}`)")
        if not pruned:
            asked = " among --pruning_methods/--pruning_percentages" if pruning_methods or sparsities else ""
            raise UsageError(f"no pruned {self.method} {self.arch} population on {self.dataset}{asked} in {where}: "
                             f"train one with `{make(f'gmp_{self.gmp_schedule}', 0.9)}`")
        self.check_provenance(dense, pruned)
        return Selection(dense, pruned, warnings, int(dense_recipe.get("train_subset", 0)))

    def check_provenance(self, dense: list[ModelSpec], pruned: dict[tuple, list[ModelSpec]]) -> None:
        """Each population is one recipe, and no pruned model was made from a dense model that has changed since:
        otherwise one line naming the files and the command that remakes them."""
        metas = read_metas(self.paths, dense + [spec for members in pruned.values() for spec in members])
        where = self.paths.model_dir(self.dataset, self.method)

        def remake(pruning, sparsity):
            def fix(seeds, recipe):
                command = self.command(pruning, sparsity, [s.seed for s in seeds], recipe)
                return f"delete the files of seeds {','.join(str(s.seed) for s in seeds)} and remake them with " \
                       f"`{command}`"
            return fix

        refuse_mixed(f"the dense {self.method} population in {where}", {s: metas[s] for s in dense},
                     remake("dense", 0.0))
        current = {spec.name: member_fingerprint(metas[spec]) for spec in dense}
        for (pruning, sparsity), members in pruned.items():
            refuse_mixed(f"the {self.method} {pruning} population at sparsity {sparsity:g} in {where}",
                         {s: metas[s] for s in members}, remake(pruning, sparsity))
            stale = [spec for spec in members if stale_parents(metas[spec], current)]
            if stale:
                files = self.paths.checkpoint(stale[0], stale[0].parts[-1]).name
                command = self.command(pruning, sparsity, [s.seed for s in stale], recipe_of(metas[stale[0]]))
                raise UsageError(f"{len(stale)} {self.method} {pruning} models at sparsity {sparsity:g} in {where} "
                                 f"({files}{', …' if len(stale) > 1 else ''}) were pruned from dense models that have "
                                 f"been retrained with another recipe since: move them away and remake them from the "
                                 f"current dense models with `{command}`")

    def _other_archs(self) -> str:
        others = sorted({s.arch for s in finished_specs(self.paths, self.dataset, self.method)} - {self.arch})
        return f" (models of {', '.join(others)} are there: pass --arch or --preset)" if others else ""

    def start(self, folders: list[Path], script: str, data_dir: str, cuda_device: int, selection: Selection,
              check=None) -> tuple[Dataset, torch.device]:
        """Load the data (the training set as the dense models saw it: their --train_subset) (and `check(data)` the
        flags that depend on it), check the output folders, pick the
        device, open the log and log the selection's warnings. -> (data on the CPU, device)."""
        data = load_dataset(self.dataset, data_dir).train_subset(selection.train_subset)
        if check is not None:
            check(data)
        preflight.check_outputs(folders, preflight.ANALYSIS_BYTES)
        device = select_device(cuda_device)
        setup_logging(self.paths.log_file(self.dataset, self.method, script))
        for line in selection.warnings:
            log.warning(line)
        return data, device


def first_members(members: list[ModelSpec], k: int, label: str) -> list[ModelSpec]:
    """The first k members by seed; fewer on disk is a warning, not an error."""
    if len(members) < k:
        log.warning("%s: only %d of the %d models asked are on disk; using %d", label, len(members), k, len(members))
    return members[:k]


def checkpoint_stamp(paths: Paths, specs: list[ModelSpec]) -> list | None:
    """Name, size and modification time of every checkpoint file of `specs`: a cache computed from them is
    stale once this changes. None when a file vanished since it was listed (then nothing is cached)."""
    try:
        return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for s in specs for p in paths.checkpoints(s)]
    except OSError:
        return None


# ---- training stages ----------------------------------------------------------------------------------

@dataclass
class Planned:
    """One population to train: its members and its resume state (found on disk, or where it will be saved)."""

    specs: list[ModelSpec]
    state_path: Path | None = None  # None: state_dir / <the job's run name>.pt


def plan_chunks(asked: list[ModelSpec], todo: list[ModelSpec], size: int, state_dir: Path,
                recipe_for: Callable[[ModelSpec], dict]) -> tuple[list[Planned], list[str]]:
    """Populations to train: first every resume state of these recipes whose members this run asks for and has
    not finished (whatever --population_size packed it), then the rest of `todo` in chunks of `size`.
    -> (populations, one line for each state left alone and why)."""
    asked_names = {spec.name: spec for spec in asked}
    todo_names = {spec.name for spec in todo}
    planned, taken, lines = [], set(), []
    for path in sorted(state_dir.glob("*.pt")) if state_dir.is_dir() else []:
        saved_fingerprint, names = saved_members(path)
        why = _left_alone(saved_fingerprint, names, asked_names, todo_names, taken, recipe_for)
        if why is None:
            planned.append(Planned([asked_names[name] for name in names], path))
            taken.update(names)
        elif why:
            lines.append(f"resume state {path} left alone: {why}")
    rest = [spec for spec in todo if spec.name not in taken]
    return planned + [Planned(rest[i:i + size]) for i in range(0, len(rest), size)], lines


def _left_alone(saved_fingerprint, names, asked, todo, taken, recipe_for) -> str | None:
    """Why a resume state is not resumed by this run ('' when it is simply another run's), or None to resume it."""
    if saved_fingerprint is None:
        return "it cannot be read; delete it to train its models from scratch"
    mine = [name for name in names if name in todo]
    if not mine:
        return ""
    foreign = [name for name in names if name not in asked]
    if foreign:
        return (f"it also holds models this run does not ask for ({', '.join(foreign)[:300]}); rerun with the "
                f"flags that asked for them to resume it, or delete it; {len(mine)} asked ones are trained from "
                f"scratch")
    if saved_fingerprint != fingerprint({"members": [recipe_for(asked[name]) for name in names]}):
        return (f"it holds {len(mine)} asked models of another recipe (fingerprint {saved_fingerprint}); rerun with "
                f"that recipe to resume it, or delete it")
    if any(name in taken for name in names):
        return "it overlaps another resume state, which is resumed instead; delete it"
    return None


def train_populations(jobs: list[tuple[Job, Path | None]], data: Dataset, device: torch.device, run,
                      paths: Paths, state_dir: Path, desc: str) -> list[dict]:
    """Train (job, resume state path or None) one after the other under one progress bar (steps of all of them,
    with an ETA) and save every finished member. A job's `prepare` (pruning, say) runs just before it trains.
    -> the members' metadata."""
    trainers = [Trainer(job, data, device, run, path or state_dir / f"{job.run_name}.pt") for job, path in jobs]
    results = []
    with progress(sum(t.total_steps() for t in trainers), desc, run.progress, unit="step") as bar:
        for trainer in trainers:
            trainer.bar = bar
            started = time.time()
            if trainer.job.prepare is not None:
                trainer.job.prepare(trainer.job)
            state = trainer.fit()
            runtime = dict(ckpt.runtime_info(device), **execution_record(run, device))
            results += save_population(paths, trainer.job, state, runtime, run.curves)
            trainer.state_path.unlink(missing_ok=True)
            log.info("trained %d models (%s) in %.1fs", len(trainer.job.specs),
                     ", ".join(s.name for s in trainer.job.specs), time.time() - started)
    return results
