"""What Corti et al.'s analyses (PIEs, prediction depth) share: the run's context (paths, data, device, logging,
preflight), the selection of populations on disk with one line per missing one, and the "make it with …" commands.
A stage module keeps only its own computing, tables and figures."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common import preflight
from common.cli import select_device
from common.data import Dataset, load_dataset
from common.errors import UsageError
from common.log import setup_logging
from common.provenance import member_fingerprint, read_metas, refuse_mixed, stale_parents
from common.engine.objectives import display_name
from common.recipe import recipe_of, value_text
from common.spec import ModelSpec, sparsity_tag
from common.studies.corti2022.commands import PRUNED, PRUNINGS, population_command, retrain_command
from common.studies.corti2022.paths import CortiPaths
from common.zoo import finished_specs, group_populations

log = logging.getLogger("prune")


def validate_selection(pruning_methods: tuple, sparsities: tuple) -> None:
    """The analyses' --pruning_methods / --pruning_percentages: known names, pruned sparsities in (0, 1)."""
    unknown = [p for p in pruning_methods if p not in PRUNED]
    if unknown:
        raise UsageError(f"--pruning_methods {','.join(unknown)}: choose from {', '.join(PRUNED)}")
    bad = [s for s in sparsities if not 0.0 < s < 1.0]
    if bad:
        raise UsageError(f"--pruning_percentages {value_text(bad)}: pruned sparsities lie in (0, 1), e.g. 0.5,0.9")


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
    paths: CortiPaths
    gmp_schedule: str = "early"  # the recipe's default GMP window, suggested when no pruned population exists
    allow_missing: bool = False  # compare what remains of a population with unreadable members (else refuse)
    unreadable: list = field(default_factory=list)  # (file, model, its population's recipe, warning): unreadable

    def command(self, pruning: str, sparsity: float, seeds: list[int], recipe: dict | None = None) -> str:
        """The complete command that makes a missing population of `seeds` under this run's preset, dataset, arch
        and output root (with the dense population's recipe, when the population is trained like it)."""
        return population_command(self.method, pruning, sparsity, self.dataset, self.arch, seeds, self.preset, recipe,
                                  self.paths.output_root)

    @property
    def name(self) -> str:
        """The method as folders and logs name it ('SupCon')."""
        return display_name(self.method)

    def populations(self, method: str | None = None) -> dict[tuple, list[ModelSpec]]:
        """{(pruning, sparsity): members} of the finished models on disk of `method` (default: this run's) made
        with the authors' recipe variants; controls with a name tag (finetune-representation, …) are listed by
        `reproduce.py --list`, not compared here."""
        found = [] if method in (None, self.method) else None  # this run's unreadable files: check_members says
        specs = finished_specs(self.paths, self.dataset, method or self.method, self.arch, retrain=retrain_command,
                               unreadable=found)
        if found is not None:
            self.unreadable = found
        return group_populations([spec for spec in specs if not spec.knobs])

    def select(self, pruning_methods: tuple = (), sparsities: tuple = (), models_number: int = 30) -> Selection:
        """The dense population and the pruned ones asked (none asked: all on disk), their provenance checked.
        Asked populations that are missing become warnings; no dense or no pruned population at all is a
        UsageError naming the command."""
        groups = self.populations()
        where = f"{self.paths.model_dir(self.dataset, self.method)}"
        dense = groups.pop(("dense", 0.0), [])
        if not dense:
            raise UsageError(f"no dense {self.name} {self.arch} population on {self.dataset} in {where}"
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
                    warnings.append(f"no {self.name} {pruning} population at sparsity {sparsity:g} in {where}: "
                                    f"skipped (make it with `{make(pruning, sparsity)}`)")
        if not pruned:
            asked = " among --pruning_methods/--pruning_percentages" if pruning_methods or sparsities else ""
            pruning = pruning_methods[0] if pruning_methods else f"gmp_{self.gmp_schedule}"
            raise UsageError(f"no pruned {self.name} {self.arch} population on {self.dataset}{asked} in {where}: "
                             f"train one with `{make(pruning, sparsities[0] if sparsities else 0.9)}`")
        self.check_members([("dense", 0.0), *pruned], models_number)
        self.check_provenance(dense, pruned)
        return Selection(dense, pruned, warnings, int(dense_recipe.get("train_subset", 0)))

    def check_members(self, compared: list[tuple], models_number: int) -> None:
        """A population of this comparison with an unreadable member (among the first `models_number` seeds) is
        refused in one line naming the files and the command that retrains them, unless allow_missing says to
        compare the members that remain (then a warning says so)."""
        keys = {(pruning, sparsity_tag(sparsity)) for pruning, sparsity in compared}
        broken = [(path, spec, recipe) for path, spec, recipe, _ in self.unreadable if spec is not None
                  and not spec.knobs and (spec.pruning, sparsity_tag(spec.sparsity)) in keys
                  and spec.arch == self.arch and spec.seed < models_number]
        if not broken or self.allow_missing:
            for *_, message in self.unreadable:
                log.warning(message)
            if broken:
                log.warning("%d unreadable members left out of the populations compared (--allow_missing_members): "
                            "the summary's *_models columns say how many each has", len(broken))
            return
        files = ", ".join(str(path) for path, _, _ in broken[:3]) + (", …" if len(broken) > 3 else "")
        _, spec, recipe = broken[0]
        raise UsageError(f"{len(broken)} unreadable or corrupt model files in the populations compared ({files}): "
                         f"delete them and retrain them with `{retrain_command(spec, recipe, self.paths)}`"
                         f"{' and likewise the others' if len(broken) > 1 else ''}, or pass --allow_missing_members "
                         f"to compare the members that remain")

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

        refuse_mixed(f"the dense {self.name} population in {where}", {s: metas[s] for s in dense},
                     remake("dense", 0.0))
        current = {spec.name: member_fingerprint(metas[spec]) for spec in dense}
        for (pruning, sparsity), members in pruned.items():
            refuse_mixed(f"the {self.name} {pruning} population at sparsity {sparsity:g} in {where}",
                         {s: metas[s] for s in members}, remake(pruning, sparsity))
            stale = [spec for spec in members if stale_parents(metas[spec], current)]
            if stale:
                files = self.paths.checkpoint(stale[0], stale[0].parts[-1]).name
                command = self.command(pruning, sparsity, [s.seed for s in stale], recipe_of(metas[stale[0]]))
                raise UsageError(f"{len(stale)} {self.name} {pruning} models at sparsity {sparsity:g} in {where} "
                                 f"({files}{', …' if len(stale) > 1 else ''}) were pruned from dense models that have "
                                 f"been retrained with another recipe since: move them away and remake them from the "
                                 f"current dense models with `{command}`")

    def _other_archs(self) -> str:
        others = sorted({s.arch for s in finished_specs(self.paths, self.dataset, self.method, retrain=retrain_command)}
                        - {self.arch})
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
