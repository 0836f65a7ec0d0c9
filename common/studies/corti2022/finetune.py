"""The recipe of a pruned + finetuned population (`FinetuneConfig`), its run (`FinetuneRunConfig`: which dense
models, which sparsities) and their presets. Defaults are the authors' *_pruning_finetune.py (paper_recipe A.5
item 1); the stage itself is common.studies.corti2022.pruning_finetune."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from common.config import (AT_LEAST_ONE, DISTINCT, JOB_RULES, MOMENTUM, NON_NEGATIVE, POSITIVE, JobConfig,
                           help_field, with_dataset_defaults)
from common.recipe import shaping
from common.studies.corti2022.config import ARCHS, DATASETS

# one-shot criteria (common.pruning.criteria.CRITERIA), each also the name of its populations (commands.PRUNINGS)
PRUNING_METHODS = ("global", "layerwise", "random")
FINETUNE_MODES = ("end_to_end", "representation")
SUPCON = ("supcon",)
REPRESENTATION = dict(methods=SUPCON, only_if="representation")  # fields of the SupCon representation mode only


@dataclass(frozen=True)
class FinetuneConfig:
    """The recipe of one pruned + finetuned population. Defaults are the authors' *_pruning_finetune.py."""

    method: str = help_field("supervised", "learning method of the dense models: supervised or supcon", cli=False)
    dataset: str = help_field("cifar10", f"dataset of the dense models: one of {DATASETS}", choices=DATASETS)
    arch: str = help_field("wrn16_2", f"architecture of the dense models: one of {ARCHS}", choices=ARCHS)
    pruning_method: str = help_field("global", "one-shot criterion: global magnitude (the authors'), layerwise "
                                               "magnitude (same sparsity in every tensor) or random",
                                     choices=PRUNING_METHODS)
    prune_bias: bool = help_field(True, "put the classifier's bias in the pruned pool, as the authors")
    finetune_mode: str = help_field("end_to_end", "end_to_end = encoder + classifier with cross-entropy (the "
                                                  "authors'); representation = encoder with the SupCon loss, then "
                                                  "the classifier on the frozen encoder (its models are named "
                                                  "..._finetune-representation_seed<k>)",
                                    choices=FINETUNE_MODES, methods=SUPCON)
    epochs: int = help_field(30, "finetuning epochs (representation mode: SupCon encoder epochs)")
    batch_size: int = help_field(128, "finetuning batch size (representation mode: images per SupCon batch)")
    learning_rate: float = help_field(1e-3, "constant SGD learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    nesterov: bool = help_field(True, "Nesterov momentum, as the authors' finetuning")
    weight_decay: float = help_field(0.0, "SGD weight decay")
    vertical_flip: bool | None = help_field(None, "RandomVerticalFlip(0.5) in the supervised augmentation; none = "
                                                  "the dataset's (cifar10: on, as the authors; digits, fashion_mnist: "
                                                  "off)")
    train_subset: int = help_field(0, "finetune on a seeded, class-balanced subset of this many training "
                                      "examples; 0 = all", omit_default=True)
    temperature: float = help_field(0.5, "representation mode: SupCon temperature (the authors' training value)",
                                    **REPRESENTATION)
    base_temperature: float = help_field(0.07, "representation mode: SupCon base temperature", **REPRESENTATION)
    head_epochs: int = help_field(30, "representation mode: classifier epochs on the frozen finetuned encoder",
                                  **REPRESENTATION)
    batch_size_head: int = help_field(128, "representation mode: classifier batch size", **REPRESENTATION)
    learning_rate_head: float = help_field(1e-3, "representation mode: classifier learning rate (constant)",
                                           **REPRESENTATION)

    def recipe(self) -> dict:
        """What shapes a finetuned model besides its dense parent (recorded apart, in `parents`)."""
        return shaping(self, representation=self.finetune_mode == "representation")

    @property
    def knobs(self) -> tuple:
        """The finetuned models' name tag: none for the authors' mode, so both modes sit side by side."""
        return () if self.finetune_mode == "end_to_end" else (("finetune", self.finetune_mode),)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FinetuneRunConfig(JobConfig):
    """A finetuning job: which dense models and sparsities."""

    models_number: int = help_field(30, "dense models to prune: seeds 0..models_number-1 (the authors' flag)")
    pruning_percentages: tuple = help_field((0.3, 0.5, 0.7, 0.9), "target sparsities in (0, 1), comma or "
                                                                  "space separated", nargs="*", item=float)


# Demo: digits / wrn10_1 (as the training demo), ~30 s per 4 models on one CPU thread. Measured at 0.9 sparsity
# on 2 dense demo models per method (mean accuracy after 5 epochs, lr 1e-3 / 1e-2 / 3e-2): supervised
# .953/.957/.971 (dense .979), SupCon end to end .693/.824/.871 (dense .850); representation mode with lr 3e-2
# and classifier lr 1e-1: .864. The paper's 1e-3 is too slow for so few steps.
_DEMO = dict(dataset="digits", arch="wrn10_1", vertical_flip=False, epochs=5, batch_size=64, learning_rate=0.03,
             head_epochs=5, batch_size_head=64, learning_rate_head=0.1)
# Study: Fashion-MNIST as the training study preset (its 5,000-image subset), one epoch at the demo's learning rates.
_STUDY = dict(dataset="fashion_mnist", arch="wrn10_1", train_subset=5000, epochs=1, batch_size=128,
              learning_rate=0.03, head_epochs=1, batch_size_head=128, learning_rate_head=0.1)
PRESETS = {"paper": {}, "demo": _DEMO, "study": _STUDY}
FINETUNE_RULES = dict(epochs=AT_LEAST_ONE, batch_size=AT_LEAST_ONE, learning_rate=POSITIVE, momentum=MOMENTUM,
                      weight_decay=NON_NEGATIVE, temperature=POSITIVE, base_temperature=POSITIVE,
                      head_epochs=AT_LEAST_ONE, batch_size_head=AT_LEAST_ONE, learning_rate_head=POSITIVE,
                      train_subset=NON_NEGATIVE)


def preset_finetune(method: str, preset: str = "paper", **overrides) -> FinetuneConfig:
    return with_dataset_defaults(replace(FinetuneConfig(method=method), **{**PRESETS[preset], **overrides}))
# The populations a preset finetunes (`sup_pruning_finetune.py --preset demo` makes the demo's): those of
# `reproduce.py --preset P` (common.studies.corti2022.reproduce.PRESETS).
RUN_PRESETS = {
    "paper": {},
    "demo": dict(models_number=3, pruning_percentages=(0.5, 0.9)),
    "study": dict(models_number=5, pruning_percentages=(0.5, 0.9), eval_every=1000),
}
RUN_RULES = dict(JOB_RULES, pruning_percentages=DISTINCT)


def preset_finetune_run(preset: str = "paper", **overrides) -> FinetuneRunConfig:
    """The run a preset makes (its dense models and sparsities), with `overrides`."""
    return replace(FinetuneRunConfig(), **{**RUN_PRESETS[preset], "preset": preset, **overrides})
