"""Typed configuration shared by every study: `help_field` (a dataclass field whose help text lives beside it and
becomes the flag's --help) and `JobConfig` (how and where a job runs, never part of a model's identity)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from common.data import DATASETS
from common.engine.objectives import METHODS
from common.engine.population import EXECUTIONS
from common.errors import UsageError


# what a field's metadata may say besides its help (a typo would silently change a flag or a model's identity)
FIELD_KEYS = {
    "cli": "False: not a flag (set by the script, e.g. the method)",
    "choices": "the values the flag accepts",
    "nargs": "a list flag ('0.3,0.5' or '0.3 0.5'); with `item`, the type of its values",
    "item": "the type of a list flag's values",
    "methods": "the objectives (common.engine.objectives.METHODS) whose models the field applies to and shapes",
    "only_if": "the name of the condition (given by the config's recipe()) under which it shapes a model",
    "shapes": "False: never part of a model's identity (a grid's list of cells, say)",
    "omit_default": "left out of the recipe at its default (a field added after models were stored)",
}


def help_field(default, help: str, **kw):
    """A dataclass field whose help text lives beside it and becomes the flag's --help; `kw` are the FIELD_KEYS,
    checked here."""
    unknown = sorted(set(kw) - set(FIELD_KEYS))
    if unknown:
        raise TypeError(f"help_field({default!r}, ...): unknown keys {', '.join(unknown)}; use {', '.join(FIELD_KEYS)}")
    bad = [m for m in kw.get("methods", ()) if m not in METHODS]
    if isinstance(kw.get("methods", ()), str) or bad:
        raise TypeError(f"help_field methods={kw['methods']!r}: a tuple of {', '.join(METHODS)}")
    if "nargs" in kw and "item" not in kw:
        raise TypeError("help_field(nargs=...): say the type of its values with item=")
    if "only_if" in kw and not str(kw["only_if"]).isidentifier():
        raise TypeError(f"help_field only_if={kw['only_if']!r}: the name of a condition")
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class JobConfig:
    """How and where a training or finetuning job runs: never part of a model's identity."""

    population_size: int = help_field(0, "models trained together in one process; 0 = fill the device "
                                          "(32 on a GPU, 8 on the CPU), 1 = one at a time")
    cuda_device: int = help_field(0, "GPU index; without CUDA the script says so and runs on the CPU")
    data_dir: str = help_field("", "folder holding (or receiving) the dataset, e.g. cifar-10-batches-py "
                                        "(default: data/ in the repository folder)")
    output_root: str = help_field("", "root of models/, logs/ and pies/ (default: the repository folder)")
    preset: str = help_field("paper", "recipe and populations preset, of the study's (the choices above): paper (the "
                                      "authors' recipe), demo (digits, CPU minutes), study (Fashion-MNIST, within an "
                                      "hour on 2 CPU cores)", choices=("paper", "demo", "study"))
    checkpoint_every: int = help_field(10, "save resumable state every N epochs (and on SIGTERM/SIGINT)")
    eval_every: int = help_field(1, "evaluate on the test set every N epochs (and always at the end)")
    amp: bool | None = help_field(None, "bf16 autocast; default: on for CUDA and for a CPU with native bf16 "
                                        "(avx512_bf16 or amx_bf16 among its flags), off otherwise "
                                        "(common/engine/precision.py)")
    compile: bool | None = help_field(None, "torch.compile each member's forward (any device; on the CPU inductor "
                                            "needs a C++ compiler); default: off")
    population_execution: str = help_field("auto", "how a population's members run in each step: vmapped (one "
                                                   "grouped convolution), one after another, or auto (a rule measured "
                                                   "per device and per-member work; common/engine/population.py)",
                                           choices=EXECUTIONS)
    channels_last: bool | None = help_field(None, "members run one after another take their images channels_last "
                                                  "(oneDNN's preferred layout); default: on for the CPU, off for "
                                                  "CUDA")
    progress: bool = help_field(True, "tqdm progress bars")
    curves: bool = help_field(True, "draw each trained model's loss and accuracy curves (a PNG beside its metrics "
                                    "CSV, which is always written; about 0.5 s per model on a 2-core CPU)")

    def default_population_size(self, device) -> int:
        return self.population_size or (32 if device.type == "cuda" else 8)


def with_dataset_defaults(config):
    """A recipe whose vertical flip is not set gets its dataset's (common.data.DATASETS)."""
    if config.vertical_flip is None:
        return replace(config, vertical_flip=DATASETS[config.dataset].vertical_flip)
    return config


# ---- checking values up front ------------------------------------------------------------------------
# A rule is (test, what the flag needs); `check_fields` raises one UsageError for the first value that fails.

AT_LEAST_ONE = (lambda v: v >= 1, "must be >= 1")
POSITIVE = (lambda v: v > 0, "must be > 0")
NON_NEGATIVE = (lambda v: v >= 0, "must be >= 0")
MOMENTUM = (lambda v: 0 <= v < 1, "must lie in [0, 1)")
MILESTONES = (lambda v: all(m > 0 for m in v) and list(v) == sorted(set(v)), "epochs must be > 0 and increasing")
DISTINCT = (lambda v: len(set(v)) == len(v), "each value once (a repeated sparsity would train the same model twice)")

JOB_RULES = dict(population_size=NON_NEGATIVE, cuda_device=NON_NEGATIVE, checkpoint_every=AT_LEAST_ONE,
                 eval_every=AT_LEAST_ONE)


def check_fields(config, rules: dict) -> None:
    """Every field named in `rules` passes its test, or one UsageError names the flag, its value and the need."""
    for name, (test, need) in rules.items():
        value = getattr(config, name)
        if not test(value):
            shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) \
                if isinstance(value, tuple) else value
            raise UsageError(f"--{name} {shown}: {need}")
