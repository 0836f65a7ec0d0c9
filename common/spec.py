"""Model identity: what a model is (`ModelSpec`), what its files are called, and the registry of pruning names.

A model's identity is read from its checkpoint's metadata (`ModelSpec.from_meta`); the file name is derived from
it and parsed back only to name a file whose metadata cannot be read. Corti et al.'s models are named
`<method>_<arch>_<dataset>_<pruning>_s<sparsity>_seed<k>`. Another study's models start with the study's name, and
its knobs (an IMP level, a rewind point, a temperature …) go between the sparsity and the seed as
`_<key>-<value>`, e.g. `tickets_supervised_wrn16_2_cifar10_imp_s0.488_level-3_rewind-1ep_seed0`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

# The authors' folder names for the two learning methods (pies/cifar10/SupCon, pies/cifar10/supervised), and those
# of the self-supervised and few-label pretexts the tickets study prunes with (common.models.HEADS: their heads).
METHOD_DIRS = {"supervised": "supervised", "supcon": "SupCon", "rotnet": "RotNet", "exemplar": "Exemplar",
               "simclr": "SimCLR", "npid": "NPID", "s4l": "S4L", "few_labels": "FewLabels"}
DEFAULT_STUDY = "corti2022"


def sparsity_tag(sparsity: float) -> str:
    """0.9 -> '0.9', 0.0 -> '0': short, exact for the paper's levels, and stable across runs."""
    return f"{sparsity:g}"


@dataclass(frozen=True)
class PruningName:
    """One way a population is pruned: which stage makes it and the flags that ask for it there."""

    name: str
    made_by: str  # 'training' (dense or GMP during training) | 'finetune' (one-shot pruning + finetuning) | a study
    flags: str  # what the making script needs besides the sparsity
    study: str = DEFAULT_STUDY  # the study whose models are pruned this way


PRUNINGS = {p.name: p for p in (
    PruningName("dense", "training", ""),
    PruningName("gmp_early", "training", "--gmp_schedule early"),
    PruningName("gmp_late", "training", "--gmp_schedule late"),
    PruningName("gmp_custom", "training", "--begin_step B --end_step E --frequency F"),
    PruningName("global", "finetune", "--pruning_method global"),
    PruningName("layerwise", "finetune", "--pruning_method layerwise"),
    PruningName("random", "finetune", "--pruning_method random"),
    # Caron et al.'s tickets (studies/tickets.py): a level of iterative magnitude pruning, and the random mask
    # corrected for natural sparsity (their random global mask is named 'random' like Corti et al.'s)
    PruningName("imp", "tickets", "", "tickets"),
    PruningName("random_natural", "tickets", "", "tickets"),
    # a pre-trained dense network pruned while it is finetuned on the transfer task (global GMP; Caron et al. Fig. 2)
    PruningName("transfer_gmp", "tickets", "", "tickets"),
)}
# what a Corti et al. analysis compares with the dense population
PRUNED = tuple(name for name, p in PRUNINGS.items() if name != "dense" and p.study == DEFAULT_STUDY)
ONE_SHOT = tuple(name for name, p in PRUNINGS.items() if p.made_by == "finetune")


@dataclass(frozen=True)
class ModelSpec:
    """The identity of one trained model: what a population member is and what its file is called."""

    method: str  # a key of METHOD_DIRS: 'supervised' | 'supcon' | a pretext
    arch: str
    dataset: str
    pruning: str  # a key of PRUNINGS
    sparsity: float
    seed: int
    study: str = DEFAULT_STUDY
    knobs: tuple = ()  # ((key, value), ...) of the study: what else shapes this model and has a name

    def __post_init__(self):
        for key, value in self.knobs:  # the file name must parse back
            if not re.fullmatch(r"[a-z]+", str(key)) or not re.fullmatch(r"[0-9A-Za-z.+-]+", _value_tag(value)):
                raise ValueError(f"knob {key}={value!r}: keys are lower-case letters, values have no '_'")

    @property
    def name(self) -> str:
        study = "" if self.study == DEFAULT_STUDY else f"{self.study}_"
        knobs = "".join(f"_{key}-{_value_tag(value)}" for key, value in self.knobs)
        return (f"{study}{METHOD_DIRS[self.method]}_{self.arch}_{self.dataset}_{self.pruning}"
                f"_s{sparsity_tag(self.sparsity)}{knobs}_seed{self.seed}")

    @property
    def parts(self) -> tuple[str, ...]:
        """A supervised model is one file; any other is its encoder (+ its heads) and its classifier."""
        return ("model",) if self.method == "supervised" else ("encoder", "classifier")

    def to_meta(self) -> dict:
        """Plain metadata; the study and knobs only where they differ from the defaults, so a Corti et al. model
        is stored exactly as before they existed."""
        meta = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.study == DEFAULT_STUDY:
            del meta["study"]
        if not self.knobs:
            del meta["knobs"]
        else:
            meta["knobs"] = [list(pair) for pair in self.knobs]
        return meta

    @classmethod
    def from_meta(cls, meta: dict) -> "ModelSpec":
        knobs = tuple(tuple(pair) for pair in meta.get("knobs", ()))
        return cls(**{**meta, "knobs": knobs})


def _value_tag(value) -> str:
    return sparsity_tag(value) if isinstance(value, float) else str(value)


_NAME = re.compile(r"(?:(?P<study>[a-z0-9]+(?:_[a-z0-9]+)*?)_)?"
                   rf"(?P<method>{'|'.join(METHOD_DIRS.values())})_(?P<arch>[a-z0-9]+(?:_[0-9]+)?)_"
                   rf"(?P<dataset>[a-z0-9_]+?)_(?P<pruning>{'|'.join(PRUNINGS)})_s(?P<sparsity>[0-9.e+-]+)"
                   r"(?P<knobs>(?:_[a-z]+-[0-9A-Za-z.+-]+)*)_seed(?P<seed>\d+)(?:_encoder|_classifier)?\.safetensors")
_KNOB = re.compile(r"_([a-z]+)-([0-9A-Za-z.+-]+)")


def spec_from_filename(name: str) -> ModelSpec | None:
    """The identity of a model from its file name (for a file whose metadata cannot be read), or None. Knob
    values come back as text."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    method = {v: k for k, v in METHOD_DIRS.items()}[match["method"]]
    return ModelSpec(method, match["arch"], match["dataset"], match["pruning"], float(match["sparsity"]),
                     int(match["seed"]), study=match["study"] or DEFAULT_STUDY,
                     knobs=tuple(_KNOB.findall(match["knobs"])))
