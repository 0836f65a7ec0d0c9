"""The study contract: what reproduce.py, the stage scripts and the launchers know of a study, and all they know.

A study is a package under common/studies/ plus one line in the registry (common/studies/__init__.py, `STUDIES`).
It hands the toolkit a `Study`: its typed configs and presets (reproduce.py builds its flags and --help from them),
how the given flags become its checked plan, its stages (name -> fn(context), in order), how a plan runs here and
how it splits into a launcher's tasks (each a function with typed arguments and the command a person types to run
it), and which models are its own (`prefix`, what `--list` shows). The core below it knows no study: a study's
code passes what only it knows (its retrain commands, its paths) down to the core functions it calls.

Argv exists only at the command line and in the commands the toolkit prints; every printed command parses back to
the typed configs it was printed from (tests/test_contract.py).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, Callable

import pandas as pd

from common.cli import OneLineParser, add_config_args, given_values
from common.launch import Stage
from common.paths import Paths


@dataclass(frozen=True)
class Study:
    name: str  # what `reproduce.py --study NAME` names
    doc: str  # what it answers, in a paragraph (its --help)
    prefix: str  # how its models' names start (ModelSpec.study): '' for the first study's, named before the others
    configs: tuple[type, ...]  # the typed configs its reproduce.py flags fill, in --help order
    presets: dict[str, dict]  # preset -> {field: value} those configs take under it (--help shows each)
    resolve: Callable[[tuple[dict, ...]], Any]  # the flags given to each config -> the checked plan (typed)
    stages: dict[str, Callable[[Any], Any]]  # its stages in order: name -> fn(context)
    run: Callable[[Any], list]  # a plan, here, stage by stage -> the models trained
    tasks: Callable[[Any], list[Stage]]  # a plan as a launcher's stages of tasks (common.launch)
    paths: Callable[[Any], Paths]  # where a plan writes
    skip: tuple[str, ...] = ()  # fields of `configs` its reproduce.py does not offer (one per objective: --objective)
    preset: str = "demo"  # the preset reproduce.py runs when --preset is not given

    def __post_init__(self):
        names = [f.name for cls in self.configs for f in fields(cls) if f.name not in self.skip]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise TypeError(f"study {self.name}: fields {', '.join(repeated)} are in more than one of its configs")

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        """Its configs' flags, each with its default under every preset."""
        for cls in self.configs:
            only = tuple(f.name for f in fields(cls) if f.name not in self.skip)
            add_config_args(parser, cls, only, presets=self.presets, defaults=dict(preset=self.preset))

    def plan(self, args: argparse.Namespace):
        """The checked plan of parsed flags."""
        return self.resolve(tuple(given_values(args, cls) for cls in self.configs))

    def parse_argv(self, argv: list[str], prog: str = "reproduce.py"):
        """A plan from argv (its reproduce.py flags)."""
        parser = OneLineParser(prog=prog, description=self.doc)
        self.add_flags(parser)
        return self.plan(parser.parse_args(argv))

    def models(self, table: pd.DataFrame) -> pd.DataFrame:
        """What `reproduce.py --list` shows of it: its rows of common.inventory.models_table (the models under one
        output root), the study column naming it."""
        if table.empty:
            return table
        return table[table["study"] == self.prefix].assign(study=self.name).reset_index(drop=True)
