"""Model identity: what a model is (`ModelSpec`) and what its files are called.

A model's identity is read from its checkpoint's metadata (`ModelSpec.from_meta`); the file name is derived from
it and parsed back only to name a file whose metadata cannot be read. The first study's models (Corti et al.'s,
named before there were others) are named `<Method>_<arch>_<dataset>_<pruning>_s<sparsity>_seed<k>` and carry no
study (study ''). Another study's models start with the study's name, and its knobs (an IMP level, a rewind point,
a temperature …) go between the sparsity and the seed as `_<key>-<value>`, e.g.
`tickets_supervised_wrn16_2_cifar10_imp_s0.488_level-3_rewind-1ep_seed0`. Each study names its own prunings
(Corti et al.'s `common.studies.corti2022.commands.PRUNINGS`); the method is a key of the objectives' registry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

from common.data import DATASETS
from common.engine.objectives import METHODS


def sparsity_tag(sparsity: float) -> str:
    """0.9 -> '0.9', 0.0 -> '0': short, exact for the paper's levels, and stable across runs."""
    return f"{sparsity:g}"


@dataclass(frozen=True)
class ModelSpec:
    """The identity of one trained model: what a population member is and what its file is called."""

    method: str  # a key of common.engine.objectives.METHODS: 'supervised' | 'supcon' | a pretext
    arch: str
    dataset: str
    pruning: str  # one of its study's pruning names (lower-case words joined by '_')
    sparsity: float
    seed: int
    study: str = ""  # the study's prefix of its models' names ('' for the first study's)
    knobs: tuple = ()  # ((key, value), ...) of the study: what else shapes this model and has a name

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*", self.pruning):
            raise ValueError(f"pruning {self.pruning!r}: lower-case words joined by '_'")
        for key, value in self.knobs:  # the file name must parse back
            if not re.fullmatch(r"[a-z]+", str(key)) or not re.fullmatch(r"[0-9A-Za-z.+-]+", _value_tag(value)):
                raise ValueError(f"knob {key}={value!r}: keys are lower-case letters, values have no '_'")

    @property
    def name(self) -> str:
        study = f"{self.study}_" if self.study else ""
        knobs = "".join(f"_{key}-{_value_tag(value)}" for key, value in self.knobs)
        return (f"{study}{METHODS[self.method].folder}_{self.arch}_{self.dataset}_{self.pruning}"
                f"_s{sparsity_tag(self.sparsity)}{knobs}_seed{self.seed}")

    @property
    def parts(self) -> tuple[str, ...]:
        """The files of a finished model (the objectives' registry): one, or its encoder (+ its heads) and its
        classifier."""
        return METHODS[self.method].parts

    def to_meta(self) -> dict:
        """Plain metadata; the study and knobs only where they are set, so a model of the first study is stored
        exactly as before studies existed."""
        meta = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.study:
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


def _alternatives(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# the dataset is one of the registry's, so that a pruning name of any study (lower-case words joined by '_') is
# what lies between it and the sparsity
_NAME = re.compile(r"(?:(?P<study>[a-z0-9]+(?:_[a-z0-9]+)*?)_)?"
                   rf"(?P<method>{_alternatives(o.folder for o in METHODS.values())})_(?P<arch>[a-z0-9]+(?:_[0-9]+)?)_"
                   rf"(?P<dataset>{_alternatives(DATASETS)})_(?P<pruning>[a-z][a-z0-9]*(?:_[a-z0-9]+)*?)"
                   r"_s(?P<sparsity>[0-9.e+-]+)"
                   r"(?P<knobs>(?:_[a-z]+-[0-9A-Za-z.+-]+)*)_seed(?P<seed>\d+)(?:_encoder|_classifier)?\.safetensors")
_KNOB = re.compile(r"_([a-z]+)-([0-9A-Za-z.+-]+)")


def spec_from_filename(name: str) -> ModelSpec | None:
    """The identity of a model from its file name (for a file whose metadata cannot be read), or None. Knob
    values come back as text."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    method = {o.folder: key for key, o in METHODS.items()}[match["method"]]
    return ModelSpec(method, match["arch"], match["dataset"], match["pruning"], float(match["sparsity"]),
                     int(match["seed"]), study=match["study"] or "", knobs=tuple(_KNOB.findall(match["knobs"])))
