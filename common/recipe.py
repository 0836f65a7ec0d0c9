"""A model's identity is its recipe: the fields that shape it, their fingerprint, and how two recipes differ.

A config dataclass marks each field with where it applies (`help_field(..., methods=("supcon",))`: only for that
learning method; `only_if="pruned"`: only when the condition of that name holds for the model). `shaping` keeps the
fields that shape one given model, so a SupCon-only flag never changes a supervised model's identity and a GMP
window never changes a dense model's. Checkpoints store that dict (`recipe`) and its `fingerprint`; every check
recomputes the fingerprint from the stored dict, so a check never trusts a stored hash.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields


def plain(value):
    """JSON's view of a value (tuples become lists), so a recipe read back from a checkpoint equals the one built."""
    return json.loads(json.dumps(value))


def fingerprint(recipe: dict) -> str:
    """12 hex digits of SHA-1 over the recipe's JSON with sorted keys."""
    return hashlib.sha1(json.dumps(plain(recipe), sort_keys=True).encode()).hexdigest()[:12]


def applies(field, method: str, conditions: dict[str, bool] | None = None) -> bool:
    """Whether a config field applies to a model of `method` (and, given the conditions, to this model)."""
    if method not in field.metadata.get("methods", (method,)):
        return False
    condition = field.metadata.get("only_if")
    return condition is None or conditions is None or conditions[condition]


def shaping(config, **conditions: bool) -> dict:
    """The fields of `config` that shape one model, as plain data: those that apply to its method and whose
    `only_if` condition holds (conditions are named by the config class, e.g. pruned=True; none given: every
    field that applies to the method, conditional or not). A field marked `omit_default` (one added after models
    were stored, whose default reproduces them) is left out at its default, so those models keep their recipe."""
    return plain({f.name: getattr(config, f.name) for f in fields(config)
                  if f.metadata.get("shapes", True) and applies(f, config.method, conditions or None)
                  and not (f.metadata.get("omit_default") and getattr(config, f.name) == f.default)})


def recipe_of(meta: dict) -> dict:
    """The recipe that shaped a stored model: its `recipe`; a checkpoint written before recipes were narrowed to
    what shapes a model has only its whole `config` (whose fingerprint is the one it stored then)."""
    return meta.get("recipe") or meta.get("config") or {}


def differences(stored: dict, wanted: dict) -> list[str]:
    """'field stored -> wanted' for every field of `wanted` the stored recipe does not match (absent: '—')."""
    stored, wanted = plain(stored), plain(wanted)
    return [f"{key} {_shown(stored.get(key, '—'))} -> {_shown(value)}" for key, value in sorted(wanted.items())
            if stored.get(key, "—") != value]


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


# ---- a recipe as the flags that ask for it ---------------------------------------------------------------

def value_text(value) -> str:
    """A flag's value as typed: 0.5 -> '0.5', 1e-05 -> '1e-05' (the shortest text that parses back exactly),
    a list -> the comma form the flags take."""
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def flag(name: str, value) -> list[str]:
    """One flag as argv: ['--epochs', '2'], ['--no-vertical_flip'], ['--lr_milestones'] (an empty list)."""
    if isinstance(value, bool):
        return [f"--{name}" if value else f"--no-{name}"]
    if isinstance(value, (list, tuple)):
        return [f"--{name}", value_text(value)] if value else [f"--{name}"]
    if value is None:
        raise ValueError(f"--{name}: 'none' cannot be asked on the command line")
    return [f"--{name}", value_text(value)]


def recipe_flags(recipe: dict, baseline: dict, skip: tuple = ()) -> str:
    """' --epochs 2 --no-vertical_flip …': the flags that turn `baseline` into `recipe` (fields in `skip` left to
    the caller, e.g. those a script takes from its name)."""
    recipe, baseline = plain(recipe), plain(baseline)
    return "".join(" " + " ".join(flag(key, value)) for key, value in recipe.items()
                   if key not in skip and value is not None and baseline.get(key) != value)
