"""Command-line plumbing shared by every entry point: flags generated from the typed config dataclasses (and the
reverse: a typed config printed as the flags that ask for it, so that every command the toolkit prints parses back
to the same configs), one-line errors with exit status 2, and device selection. Argv exists only here, at the
command line, and in the commands the toolkit prints; everything else passes typed configs."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from dataclasses import MISSING, fields, replace
from typing import Callable

import torch

from common.errors import CheckpointError, DataError, Preempted, UsageError
from common.launch import LaunchConfig, Stage, Task, command_line, launch_stages
from common.log import start_stage
from common.paths import Paths
from common.preflight import check_slurm
from common.recipe import applies, flag, value_text
from common.runtime import keep_freed_memory


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block first
        raise UsageError(f"{_as_typed(message)} (see {self.prog} --help)")


def _as_typed(message: str) -> str:
    """argparse's "argument --preset: invalid choice: 'study' (choose from 'paper', 'demo')" in the form every
    other error takes: "--preset study: invalid choice (choose from paper, demo)"."""
    match = re.fullmatch(r"argument (--\w+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not match:
        return message
    return f"{match[1]} {match[2]}: invalid choice (choose from {match[3].replace(chr(39), '')})"


def _parse_list(item: type) -> Callable[[str], list]:
    """Accept both the authors' comma-separated form ('0.3,0.5') and space-separated values."""
    def parse(text: str) -> list:
        try:
            return [item(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {item.__name__} values, got {text!r}")
    return parse


def _scalar_type(annotation: str) -> type:
    base = annotation.replace("| None", "").strip()
    return {"int": int, "float": float, "str": str, "bool": bool}[base]


def add_config_args(parser: argparse.ArgumentParser, cls, only: tuple[str, ...] | None = None,
                    method: str | None = None, presets: dict[str, dict] | None = None,
                    defaults: dict | None = None) -> None:
    """One flag per dataclass field that applies to `method` (common.recipe.applies), help text from the field
    and the default each preset runs with (`presets`: {preset: {field: value}}; a field it does not name keeps the
    dataclass default, or its value in `defaults`); a `preset` flag offers the presets' names. Defaults are
    suppressed in the namespace so that the caller can tell which flags were given (given flags override the
    preset)."""
    group = parser.add_argument_group(cls.__name__)
    for f in fields(cls):
        if not f.metadata.get("cli", True) or (only is not None and f.name not in only):
            continue
        if method is not None and not applies(f, method):
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        default = (defaults or {}).get(f.name, default)
        text = f.metadata["help"]  # a help text that already says its default is not told it twice
        shown = text if "default" in text else f"{text} ({_defaults_text(f.name, default, presets or {})})"
        kw = dict(default=argparse.SUPPRESS, help=shown.replace("%", "%%"))
        if "choices" in f.metadata:
            kw["choices"] = tuple(presets) if f.name == "preset" and presets else f.metadata["choices"]
        if "nargs" in f.metadata:
            group.add_argument(f"--{f.name}", nargs="*", type=_parse_list(f.metadata["item"]), **kw)
        elif f.type.replace("| None", "").strip() == "bool":
            group.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(f"--{f.name}", type=_scalar_type(f.type), **kw)


def _defaults_text(name: str, default, presets: dict[str, dict]) -> str:
    """'default: 205' or, where presets differ, 'default: 205 (paper preset), 12 (demo preset)'."""
    values = {preset: values.get(name, default) for preset, values in presets.items()}
    if len(set(map(_shown, values.values()))) <= 1:
        return f"default: {_shown(default if not values else next(iter(values.values())))}"
    return "default: " + ", ".join(f"{_shown(value)} ({preset} preset)" for preset, value in values.items())


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return value_text(value) if value else "none"
    return "none" if value is None or value == "" else str(value)


def given_values(args: argparse.Namespace, cls) -> dict:
    """The flags of `cls` that were given, lists flattened to tuples."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            if "nargs" in f.metadata:
                value = tuple(v for chunk in value for v in chunk)
            out[f.name] = value
    return out


def preset_values(*configs) -> dict:
    """{field: value} of a preset's configs, as --help shows each flag's default under that preset."""
    values = {}
    for config in configs:
        values.update({f.name: getattr(config, f.name) for f in fields(config) if f.name != "preset"})
    return values


def config_flags(config, baseline=None, always: tuple[str, ...] = (), skip: tuple[str, ...] = (),
                 method: str | None = None) -> list[str]:
    """The flags that turn `baseline` (a config of the same class; None: the class defaults) into `config`, as
    argv: every command-line field that differs, and those of `always` whatever their value, in field order,
    leaving out `skip` and the fields that do not apply to `method`. parse_flags reads them back to `config`."""
    baseline = type(config)() if baseline is None else baseline
    argv = []
    for f in fields(config):
        if not f.metadata.get("cli", True) or f.name in skip or (method is not None and not applies(f, method)):
            continue
        value = getattr(config, f.name)
        if f.name in always or value != getattr(baseline, f.name):
            argv += flag(f.name, value)
    return argv


def parse_flags(prog: str, doc: str, argv, *configs, method: str | None = None,
                presets: dict[str, dict] | None = None) -> list[dict]:
    """Parse `argv` into the flags of each config class (a class, or (class, only these fields)) that apply to
    `method`; -> the given values of each, in order (what was not given is left to the preset and the defaults).
    --help shows each flag's default under every preset where they differ, and the launcher's flags (run_main
    takes those before the script sees its argv)."""
    start_stage()
    parser = OneLineParser(description=doc.splitlines()[0], prog=prog)
    configs = [c if isinstance(c, tuple) else (c, None) for c in configs]
    for cls, only in configs:
        add_config_args(parser, cls, only, method, presets)
    add_config_args(parser, LaunchConfig)
    args = parser.parse_args(argv)
    return [given_values(args, cls) for cls, _ in configs]


def check_device(cuda_device: int) -> None:
    """Up front: a GPU index asked for that this machine does not have is a one-line error (index 0, the default,
    falls back to the CPU with a note when there is no CUDA)."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_device < 0 or (cuda_device > 0 and cuda_device >= count):
        have = f"{count} GPU(s); pick 0..{count - 1}" if count else "no CUDA GPU; leave --cuda_device out to run on the CPU"
        raise UsageError(f"--cuda_device {cuda_device}: this machine has {have}")


def select_device(cuda_device: int) -> torch.device:
    check_device(cuda_device)
    if not torch.cuda.is_available():
        print("CUDA is not available: running on the CPU.", file=sys.stderr)
        return torch.device("cpu")
    torch.cuda.set_device(cuda_device)
    return torch.device(f"cuda:{cuda_device}")


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a script's main; known user errors become one line on stderr and exit status 2. Every script also takes
    common.launch's flags: `--launcher slurm` submits its run as one Slurm job (a main marked `launches_itself`,
    reproduce.py's, splits a study into populations and handles them itself)."""
    keep_freed_memory()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here Ctrl-C is KeyboardInterrupt, handled below
    prog = sys.argv[0].rsplit("/", 1)[-1] or "script"
    try:
        result = main(argv) if getattr(main, "launches_itself", False) else _launched(main, argv, prog)
    except (UsageError, DataError, CheckpointError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Preempted as stop:  # exit like the signal would have (128 + number), after saving state
        print(f"{prog}: {stop}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except KeyboardInterrupt:  # an analysis stopped by Ctrl-C: what it finished is on disk, the rest reruns
        print(f"{prog}: interrupted (Ctrl-C); finished work is kept, rerun the same command to go on",
              file=sys.stderr)
        sys.exit(130)
    failed = [r for r in result if isinstance(r, dict) and r.get("failed")] if isinstance(result, list) else []
    if failed:
        print(f"{prog}: {len(failed)} of {len(result)} models failed (non-finite loss): their last good states are "
              f"under .failed/ and the log says when; fix the recipe (a lower --learning_rate, say) and rerun",
              file=sys.stderr)
        sys.exit(3)


def _launched(main, argv, prog: str):
    """main(argv) here, or, with --launcher slurm / --dry_run, as one Slurm job through common.launch."""
    parser = OneLineParser(prog=prog, add_help=False)
    add_config_args(parser, LaunchConfig)
    parser.add_argument("--output_root", default="")
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    launch = replace(LaunchConfig(), **given_values(known, LaunchConfig))
    if known.output_root:
        rest += ["--output_root", known.output_root]
    if launch.launcher == "local" and not launch.dry_run:
        return main(rest)
    if not launch.dry_run:
        check_slurm()
    script = sys.argv[0] if sys.argv[0].endswith(".py") else prog
    task = Task(prog, main, (rest,), command_line(os.path.relpath(script), rest))
    return launch_stages([Stage(prog.removesuffix(".py"), [task])], launch, Paths.at(known.output_root).logs / "slurm")
