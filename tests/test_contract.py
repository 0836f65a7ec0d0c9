"""The study contract (common/study.py) and the registries: the core imports no study and has no import cycle and
no import hidden in a function; every study and objective is complete in its registry; every command the toolkit
prints parses back to the typed configs it was printed from; reproduce.py's --help and --list cover every study."""
import ast
import re
import shlex
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

import reproduce
from common import checkpoint as ckpt
from common.config import help_field
from common.engine.objectives import LABELS, METHODS, OBJECTIVES, Objective
from common.launch import Stage
from common.paths import Paths
from common.pruning.criteria import CRITERIA, Inputs
from common.spec import ModelSpec, spec_from_filename
from common.study import Study
from common.studies import STUDIES
from common.studies.corti2022 import depth, pies, pruning_finetune, training
from common.studies.corti2022 import reproduce as corti
from common.studies.corti2022.commands import PRUNINGS, population_command, retrain_command as corti_retrain
from common.studies.corti2022.config import preset_run
from common.studies.corti2022.finetune import preset_finetune_run
from common.studies.three_regime import commands as regime_commands, run as regime
from common.studies.three_regime.grid import PHASES as REGIME_PHASES
from common.studies.three_regime.knobs import KNOBS
from common.studies.tickets import commands as ticket_commands, run as tickets
from common.studies.tickets.config import OBJECTIVES as TICKET_OBJECTIVES
from common.studies.tickets.objectives import PHASES as TICKET_PHASES

REPO = Path(__file__).resolve().parent.parent
CORE = [p for p in (REPO / "common").rglob("*.py") if "studies" not in p.relative_to(REPO / "common").parts]


# ---- the shape of the house --------------------------------------------------------------------------------------

def imports(path: Path):
    """(module imported, inside a function, its line) of every import of a file."""
    text = path.read_text()
    lines, tree = text.splitlines(), ast.parse(text)
    inner = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        line = lines[node.lineno - 1] if hasattr(node, "lineno") else ""
        if isinstance(node, ast.Import):
            yield from ((alias.name, id(node) in inner, line) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, id(node) in inner, line
            yield from ((f"{node.module}.{alias.name}", id(node) in inner, line) for alias in node.names)


def test_no_core_module_imports_a_study():
    offending = [f"{p.relative_to(REPO)} imports {name}" for p in CORE for name, _, _ in imports(p)
                 if name == "common.studies" or name.startswith("common.studies.")]
    assert not offending, offending


def sources():
    return [p for p in REPO.rglob("*.py") if not {".venv", "tests"} & set(p.relative_to(REPO).parts)]


def test_no_project_import_hides_in_a_function():
    """A function imports only a slow or optional library, saying why on the same line (umap: --plot_umap)."""
    hidden = [f"{p.relative_to(REPO)}: {name}" for p in sources() for name, inner, _ in imports(p)
              if inner and (name.startswith("common") or name == "reproduce")]
    assert not hidden, hidden
    unexplained = [f"{p.relative_to(REPO)}: {line.strip()}" for p in sources() for _, inner, line in imports(p)
                   if inner and "#" not in line]
    assert not unexplained, unexplained


def module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle():
    modules = {module_of(p): p for p in sources()}
    graph = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text())
        for node in tree.body:  # the imports run when the module loads
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets.update(subs if len(subs) == len(node.names) else [node.module, *subs])
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        graph[name] = targets - {name}
    done, path_now = set(), []

    def visit(node):
        if node in path_now:
            raise AssertionError(f"import cycle: {' -> '.join(path_now[path_now.index(node):] + [node])}")
        if node in done:
            return
        path_now.append(node)
        for target in graph[node]:
            visit(target)
        path_now.pop()
        done.add(node)

    for node in graph:
        visit(node)


# ---- the registries are complete ---------------------------------------------------------------------------------

def test_every_study_is_complete_and_named_once():
    assert list(STUDIES) == ["corti2022", "tickets", "three_regime"]
    assert len({s.prefix for s in STUDIES.values()}) == len(STUDIES)
    for name, study in STUDIES.items():
        assert isinstance(study, Study) and study.name == name and study.doc and study.stages
        assert study.preset in study.presets
        plan = study.parse_argv([])
        stages = study.tasks(plan)
        assert stages and all(isinstance(s, Stage) and s.tasks for s in stages)
        assert isinstance(study.paths(plan), Paths)


def test_every_objective_has_every_fact():
    folders = [o.folder for o in METHODS.values()]
    assert len(set(folders)) == len(folders) and all(folders)
    for name, objective in OBJECTIVES.items():
        assert issubclass(objective.loss, Objective) and objective.labels in LABELS, name
        assert objective.parts in (("model",), ("encoder", "classifier")), name
    assert set(TICKET_PHASES) == set(TICKET_OBJECTIVES) == set(METHODS)  # the tickets study prunes with every one
    assert set(REGIME_PHASES) >= set(regime_commands.ENTRY.recipe.__dataclass_fields__["objective"].metadata["choices"])
    for knob in KNOBS.values():
        assert knob.tag and knob.label and callable(knob.dense_phase)


def test_every_criterion_takes_the_network_and_a_batch_without_a_signature_change():
    pool = {"w": torch.randn(2, 4, 5)}
    for name, criterion in CRITERIA.items():
        masks = criterion(pool, [0.5, 0.25], [0, 1], Inputs(population="the networks", batch=("x", "y")))
        assert masks.member_pruned(0) == 10 and masks.member_pruned(1) == 5, name


def test_help_field_refuses_a_key_it_does_not_know():
    with pytest.raises(TypeError, match="onlyif"):
        help_field(0, "x", onlyif="pruned")
    with pytest.raises(TypeError, match="supcom"):
        help_field(0, "x", methods=("supcom",))
    with pytest.raises(TypeError, match="item"):
        help_field((), "x", nargs="*")


def test_every_pruning_name_of_every_study_parses_back_from_its_file_name():
    names = list(PRUNINGS) + ["imp", "random_natural", "transfer_gmp", "layerwise", "global"]
    for pruning in names:
        for dataset in ("digits", "fashion_mnist"):
            spec = ModelSpec("supcon", "wrn16_2", dataset, pruning, 0.5, 3, "tickets", (("level", 2),))
            assert spec_from_filename(spec.name + "_classifier.safetensors") == replace(spec, knobs=(("level", "2"),))


# ---- every printed command parses back to its typed configs ------------------------------------------------------

PARSERS = {  # script -> argv -> the typed configs its task passes (after the method)
    **{f"{prefix}_training.py": (lambda m: lambda argv: training.parse(m, argv))(m)
       for prefix, m in (("sup", "supervised"), ("clr", "supcon"))},
    **{f"{prefix}_pruning_finetune.py": (lambda m: lambda argv: pruning_finetune.parse(m, argv))(m)
       for prefix, m in (("sup", "supervised"), ("clr", "supcon"))},
    **{f"{prefix}_pie_kmodels_detection.py": (lambda m: lambda argv: pies.parse(m, argv))(m)
       for prefix, m in (("sup", "supervised"), ("clr", "supcon"))},
    **{f"{prefix}_prediction_depth.py": (lambda m: lambda argv: (depth.parse(m, argv),))(m)
       for prefix, m in (("sup", "supervised"), ("clr", "supcon"))},
    "studies/tickets.py": tickets.parse,
    "studies/three_regime.py": regime.parse,
    "reproduce.py": lambda argv: (corti.parse(argv),),
}
PLANS = {
    "corti2022": [["--preset", "demo"], ["--preset", "study", "--output_root", "/tmp/somewhere else"],
                  ["--preset", "paper", "--models_number", "10", "--population_size", "4", "--no-progress"],
                  ["--preset", "paper", "--smoke", "--smoke_images", "40", "--pruning_percentages", "0.5"],
                  ["--stages", "pies", "depth", "report", "--prediction_depth_models", "1", "--cuda_device", "0"]],
    "tickets": [[], ["--preset", "paper", "--index_end", "9", "--population_size", "4", "--objectives", "supervised",
                     "supcon", "--layerwise_depths", "1,3", "--epochs", "3", "--lr_milestones", "--no-curves"],
                ["--objectives", "s4l", "--label_fraction", "0.25", "--stages", "imp", "report", "--rewind", "0it"]],
    "three_regime": [[], ["--knob", "batch_size", "--objectives", "supcon", "--densities", "0.1,0.3",
                          "--retrain_seeds", "4", "5", "--index_start", "2", "--index_end", "3"],
                     ["--knob", "sam_rho", "--stages", "train", "plot", "--only_temperatures", "0.1"]],
}


def parsed(command: str):
    argv = shlex.split(command)
    assert argv[0] == "python", command
    return PARSERS[argv[1]](argv[2:])


@pytest.mark.parametrize("study,argv", [(s, a) for s, plans in PLANS.items() for a in plans])
def test_every_task_command_parses_back_to_the_task_configs(study, argv):
    study = STUDIES[study]
    stages = study.tasks(study.parse_argv(argv))
    for task in (t for stage in stages for t in stage.tasks):
        configs = task.args[1:] if isinstance(task.args[0], str) else task.args
        assert tuple(parsed(task.command)) == tuple(configs), task.command


def corti_specs():
    for method in ("supervised", "supcon"):
        for pruning in PRUNINGS:
            yield ModelSpec(method, "wrn10_1", "digits", pruning, 0.0 if pruning == "dense" else 0.5, 2)


@pytest.mark.parametrize("spec", list(corti_specs()), ids=lambda s: s.name)
def test_corti_retrain_commands_parse_and_make_the_model(spec, tmp_path):
    recipe = dict(epochs=3, lr_milestones=[1, 2], vertical_flip=True)
    if spec.pruning == "gmp_custom":  # a window by steps, read from the population's recipe
        recipe.update(begin_step=5, end_step=9, frequency=2)
    command = corti_retrain(spec, recipe, Paths(tmp_path))
    configs = parsed(command)
    cfg, run = configs
    assert run.output_root == str(tmp_path) and spec.sparsity in run.pruning_percentages
    if PRUNINGS[spec.pruning].made_by == "training":
        assert (run.index_start, run.index_end, cfg.epochs, cfg.lr_milestones) == (2, 2, 3, (1, 2))
        assert training.pruning_name(cfg, spec.sparsity) == spec.pruning
    else:
        assert run.models_number == 3 and cfg.pruning_method == spec.pruning


REGIME_SPECS = [  # dense (the epochs knob: one run), pruned, re-trained
    ModelSpec("supervised", "preresnet20", "digits", "dense", 0.0, 1, "three_regime", (("knob", "epochs"),
                                                                                       ("temperature", 6))),
    ModelSpec("supcon", "preresnet20", "digits", "layerwise", 0.8, 1, "three_regime", (("knob", "rho"),
                                                                                     ("temperature", 0.1))),
    ModelSpec("supervised", "preresnet20", "digits", "layerwise", 0.95, 3, "three_regime",
              (("knob", "batch"), ("temperature", 64), ("dense", 1))),
    ModelSpec("supcon", "preresnet20", "digits", "layerwise", 0.2, 1, "three_regime",
              (("knob", "epochs"), ("temperature", 4), ("dense", 2))),
]


@pytest.mark.parametrize("spec", REGIME_SPECS, ids=lambda s: s.name)
def test_three_regime_retrain_commands_parse(spec, tmp_path):
    """Issue 27: the fix command printed for a three-regime model failed with 'unrecognized arguments:
    --index_start 1 --index_end 1'."""
    cfg, run = parsed(regime_commands.retrain_command(spec, None, Paths(tmp_path)))
    assert cfg.objective == spec.method and run.output_root == str(tmp_path)
    assert (run.dense_seeds, run.stages) == ((int(dict(spec.knobs).get("dense", spec.seed)),),
                                               ("retrain",) if "dense" in dict(spec.knobs) else run.stages)


TICKET_SPECS = [
    ModelSpec("rotnet", "wrn10_1", "digits", "imp", 0.36, 1, "tickets", (("level", 2), ("rewind", "1ep"))),
    ModelSpec("supervised", "wrn10_1", "digits", "random_natural", 0.2, 0, "tickets",
              (("objective", "s4l-per-class-0.1"), ("level", 1), ("rewind", "1ep"), ("init", "reinit"))),
    ModelSpec("supervised", "wrn10_1", "fashion_mnist", "transfer_gmp", 0.2, 0, "tickets",
              (("objective", "rotnet"), ("source", "digits"), ("level", 1), ("rewind", "1ep"))),
]


@pytest.mark.parametrize("spec", TICKET_SPECS, ids=lambda s: s.name)
def test_tickets_retrain_commands_parse(spec, tmp_path):
    cfg, run = parsed(ticket_commands.retrain_command(spec, dict(label_fraction=0.1), Paths(tmp_path)))
    assert run.output_root == str(tmp_path) and run.index_start == run.index_end == spec.seed
    assert run.levels == int(dict(spec.knobs)["level"]) and cfg.dataset == "digits"


def test_a_population_command_parses_for_every_pruning():
    for pruning in PRUNINGS:
        for method in ("supervised", "supcon"):
            command = population_command(method, pruning, 0.5 if pruning != "dense" else 0.0, "fashion_mnist",
                                         "wrn10_1", [0, 1, 2])
            assert "--preset study" in command and parsed(command)


# ---- reproduce.py covers every study -----------------------------------------------------------------------------

@pytest.mark.parametrize("study", list(STUDIES))
def test_help_shows_the_study_its_flags_the_launcher_and_each_preset(study, capsys):
    argv = [] if study == "corti2022" else ["--study", study]
    with pytest.raises(SystemExit) as stop:
        reproduce.main([*argv, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert stop.value.code == 0
    assert out.startswith(f"usage: reproduce.py{'' if study == 'corti2022' else ' --study ' + study}")
    assert all(flag in out for flag in ("--study", "--list", "--launcher", "--dry_run", "--slurm_time"))
    flags = {f.name for cls in STUDIES[study].configs for f in fields(cls)} - set(STUDIES[study].skip)
    assert all(f"--{name}" in out for name in flags if name != "preset")
    assert re.search(r"\(demo preset\)", out)
    assert "[--objective " not in out  # one objective is studies/NAME.py's flag


def save(paths: Paths, spec: ModelSpec) -> None:
    meta = dict(spec=spec.to_meta(), recipe={"epochs": 1}, test_accuracy=0.5)
    for part in spec.parts:
        ckpt.save_model(paths.checkpoint(spec, part), {"w": torch.zeros(1)}, dict(meta, part=part))


def test_list_shows_every_study_and_counts_unreadable_files_as_not_ok(tmp_path, capsys):
    paths = Paths(tmp_path)
    for spec in (ModelSpec("supcon", "wrn10_1", "digits", "dense", 0.0, 0), TICKET_SPECS[0], REGIME_SPECS[1]):
        save(paths, spec)
    broken = ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 1)
    save(paths, broken)
    paths.checkpoint(broken).write_bytes(b"not a checkpoint")
    failed = ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, 2)  # a diverged member's last state
    ckpt.save_model(paths.failed_checkpoint(failed), {"w": torch.zeros(1)}, dict(spec=failed.to_meta(), failed=True))
    reproduce.main(["--list", "--output_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert all(name in out for name in ("corti2022", "tickets", "three_regime", "rotnet"))
    assert "4 models; 1 not ok" in out
    reproduce.main(["--study", "tickets", "--list", "--output_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "1 models; 0 not ok" in out and "three_regime" not in out


@pytest.mark.parametrize("preset", ["demo", "study", "paper"])
def test_a_stage_scripts_preset_makes_the_populations_reproduce_makes(preset):
    """Issue 27: `sup_training.py --preset demo` asked for 150 models while the demo trains 3 x 3."""
    study = corti.preset_study(preset)
    for method in ("supervised", "supcon"):
        _, run = corti.training_configs(study, method, "early")
        alone = preset_run(preset)
        assert (run.index_start, run.index_end, run.eval_every) == (alone.index_start, alone.index_end, alone.eval_every)
        if preset != "paper":  # the paper preset's scripts keep the authors' defaults (0.0,0.3,...,0.9)
            assert run.pruning_percentages == alone.pruning_percentages
            assert corti.finetune_configs(study, method)[1] == replace(preset_finetune_run(preset), preset=preset)
            assert corti.pie_configs(study, method)[0] == replace(pies.preset_pies(method, preset), plot_q_score=True,
                                                                  plot_umap=True)
            assert corti.depth_configs(study, method) == depth.preset_depth(method, preset)
