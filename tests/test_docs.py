"""The README and the docs/ pages as a reader meets them: short enough, every relative link and image there, nothing
outside the repository, every command (of a shell block, or quoted inline as `python ...`) accepted by its script's
parser, every Python block valid."""
from __future__ import annotations

import argparse
import re
import runpy
import shlex
import signal
import sys
import warnings
from pathlib import Path

import pytest

from common.paths import REPO_ROOT
from common.studies.corti2022 import readme as corti_readme
from common.studies.tickets import readme as tickets_readme

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
NOT_OURS = ("./setup.sh", "source", "tests/slurm/cluster.sh")  # shell steps with no Python parser to ask


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = BLOCK.sub("", page.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def links(page: Path) -> list[str]:
    text = BLOCK.sub("", page.read_text())
    return [a or b for a, b in LINK.findall(text)]


def blocks(page: Path, *languages: str) -> list[str]:
    return [body for language, body in BLOCK.findall(page.read_text()) if language in languages]


def test_the_readme_fits_on_a_few_screens_and_starts_with_the_two_commands():
    text = (REPO_ROOT / "README.md").read_text()
    assert text.count("\n") <= 250
    first = blocks(REPO_ROOT / "README.md", "bash")[0]
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["./setup.sh demo", "./setup.sh test"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_and_image_resolves_inside_the_repository(page):
    assert "shared/docs" not in page.read_text(), "a link to notes outside the repository"
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # an address on the web (https:, mailto:) is not ours to check
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(REPO_ROOT.resolve()), f"{page.name}: {target} leaves the repository"
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: {target} names no heading of {resolved.name}"


def shell_commands(page: Path) -> list[list[str]]:
    """The commands of a page's bash/sh blocks, continuation lines joined, comments dropped."""
    commands = []
    for body in blocks(page, "bash", "sh", "shell"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


class Parsed(BaseException):
    """Raised by the patched parse_args once a script's own parser accepted its flags: nothing runs."""


def parse_only(words: list[str], monkeypatch) -> None:
    """Run the script of `python [-m] X args` in this process up to its parser's verdict on `args`."""
    words = words[1:] if words[0].endswith("python") else words
    parse_args, parse_known_args = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    inside_parse_args = []  # parse_args calls parse_known_args, then refuses what is left

    def parsed(self, args=None, namespace=None):
        inside_parse_args.append(True)
        try:
            result = parse_args(self, args, namespace)
        finally:
            inside_parse_args.pop()
        if self.add_help:  # a script's full parser (the helpers that peek at one flag have no --help)
            raise Parsed()
        return result

    def known(self, args=None, namespace=None):  # a script that hands what it does not know on (profile_presets)
        result = parse_known_args(self, args, namespace)
        if self.add_help and not inside_parse_args:
            raise Parsed()
        return result

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parsed)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", known)
    handler = signal.getsignal(signal.SIGINT)
    try:
        if words[0] == "-m":
            monkeypatch.setattr(sys, "argv", [words[1], *words[2:]])
            with warnings.catch_warnings():  # the module is imported already (by this test file): run it anyway
                warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
                runpy.run_module(words[1], run_name="__main__")
        else:
            assert (REPO_ROOT / words[0]).is_file(), f"{words[0]} is not a script of the repository"
            monkeypatch.setattr(sys, "argv", words)
            runpy.run_path(str(REPO_ROOT / words[0]), run_name="__main__")
    except Parsed:
        return
    except SystemExit as stop:
        pytest.fail(f"{shlex.join(words)}: exit {stop.code} before its flags parsed")
    finally:
        signal.signal(signal.SIGINT, handler)
    pytest.fail(f"{shlex.join(words)}: never parsed its flags")


def inline_commands(page: Path) -> list[list[str]]:
    """The `python ...` commands quoted in a page's prose (line breaks inside them joined); of alternatives written
    `a|b|c` the first."""
    spans = re.findall(r"`(python [^`]+)`", BLOCK.sub("", page.read_text()))
    return [[word.split("|")[0] for word in shlex.split(" ".join(span.split()))] for span in spans]


COMMANDS = [(page, words) for page in PAGES for words in shell_commands(page) + inline_commands(page)]


@pytest.mark.parametrize("page, words", COMMANDS, ids=[f"{p.name}:{[x for x in w if x != '-m'][min(1, len(w) - 1)]}"
                                                       for p, w in COMMANDS])
def test_every_command_parses(page, words, monkeypatch, capsys):
    if words[0] in NOT_OURS:
        assert (REPO_ROOT / words[0]).is_file() or words[0] == "source"
        return
    assert words[0].endswith("python"), f"{page.name}: {shlex.join(words)} is neither ours nor Python"
    parse_only(words, monkeypatch)


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_every_python_block_compiles(page):
    for body in blocks(page, "python"):
        compile(body, str(page), "exec")


GENERATED = [(corti_readme, preset, corti_readme.PAGES[preset]) for preset in corti_readme.PRESETS] + \
    [(tickets_readme, preset, "docs/tickets.md") for preset in ("demo", "study")]  # generator, preset, its page


@pytest.mark.parametrize("generator, preset, page", GENERATED, ids=[f"{g.__name__.split('.')[-2]}-{p}"
                                                                    for g, p, _ in GENERATED])
def test_every_generated_block_has_its_markers_once_on_its_page(generator, preset, page):
    text = (REPO_ROOT / page).read_text()
    begin, end = generator.markers(preset)
    assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end), (page, preset)
    new = f"{begin}\nregenerated\n{end}"
    assert generator.replace_block(text, preset, new).count("regenerated") == 1


def test_the_parse_check_refuses_a_bad_flag(monkeypatch):
    with pytest.raises(pytest.fail.Exception, match="exit 2"):
        parse_only(["python", "sup_training.py", "--preset", "demo", "--no_such_flag"], monkeypatch)
