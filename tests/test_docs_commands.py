"""The commands the README and docs show run as written: every ``personsearch`` command in their
shell blocks and inline code parses against the CLI (the command exists, every option exists and
takes the value shown), and every ``python benchmarks/...`` script they name (the figure tables'
commands among them) exists and has the options shown.

Parsing, not running: the blocks work on footage, clusters and hours of training that a test
cannot have. What a reader copies and breaks first is a renamed command or option, which this
catches. The README's first command runs in test_demo.py, its API example's calls in
test_end_to_end.py's API round trip.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from _pytest.mark import ParameterSet

from personsearch.interfaces.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_WALKTHROUGHS = {"performance-log.md"}  # a dated log, kept as it was written at the time
BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`((?:personsearch|python benchmarks/)[^`\n]*)`")
OPERATORS = {"&&", "||", ";", "|"}


def shell_commands(lines: list[str]) -> list[list[str]]:
    """Each simple command of shell ``lines``, as words (comments and ``&&`` / ``;`` / ``|`` chains
    handled as a shell would)."""
    commands: list[list[str]] = []
    for line in lines:
        if line.count("'") % 2 or line.count('"') % 2:  # prose after a command: "... then a judge's marks"
            line = line[: min(line.find(q) for q in "'\"" if q in line)]
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        words: list[str] = []
        for word in lexer:
            if word in OPERATORS:
                commands.append(words)
                words = []
            else:
                words.append(word)
        commands.append(words)
    return [c for c in commands if c]


def cli_arguments(words: list[str]) -> list[str] | None:
    """The arguments after the ``personsearch`` program in ``words``, or None when it is another
    program (``personsearch``, ``.venv/bin/personsearch``, ``... -m personsearch.interfaces.cli``)."""
    for i, word in enumerate(words):
        if Path(word).name == "personsearch":
            return words[i + 1 :]
        if word == "personsearch.interfaces.cli" and i and words[i - 1] == "-m":
            return words[i + 1 :]
    return None


def documented(kind: str, where: str) -> list[ParameterSet]:
    """``kind`` ("cli" or "script") commands of the docs' shell blocks (``where="block"``: whole
    invocations) or inline code (``"inline"``: often a reference, ``personsearch index --approximate``)."""
    found = []
    for path in DOCUMENTS:
        if path.name in NOT_WALKTHROUGHS:
            continue
        text = path.read_text()
        if where == "block":
            lines = [line for b in BLOCK.findall(text) for line in b.replace("\\\n", " ").splitlines()]
        else:
            lines = INLINE.findall(BLOCK.sub("", text))
        for words in shell_commands(lines):
            arguments = cli_arguments(words)
            if kind == "cli" and arguments is not None:
                found.append(
                    pytest.param(path.name, arguments, id=f"{path.name}: {' '.join(arguments)[:70]}")
                )
            elif (
                kind == "script" and words[0].startswith("python") and words[1:2] and words[1].endswith(".py")
            ):
                found.append(
                    pytest.param(path.name, words[1:], id=f"{path.name}: {' '.join(words[1:])[:70]}")
                )
    return found


CLI_COMMANDS = documented("cli", "block")
CLI_REFERENCES = documented("cli", "inline")
SCRIPTS = documented("script", "block") + documented("script", "inline")


def test_the_docs_show_commands_to_check() -> None:
    assert {p.values[0] for p in CLI_COMMANDS} >= {"README.md", "real-footage.md"}
    assert len(CLI_COMMANDS) >= 30 and len(CLI_REFERENCES) >= 30
    assert len(SCRIPTS) >= 20


@pytest.mark.parametrize(("document", "arguments"), CLI_COMMANDS)
def test_documented_cli_command_parses(document: str, arguments: list[str]) -> None:
    group = typer.main.get_command(app)
    context = group.make_context("personsearch", list(arguments))
    name, command, rest = group.resolve_command(context, [*context._protected_args, *context.args])  # type: ignore[attr-defined]
    assert command is not None, f"{document}: no command {name!r}"
    command.make_context(name, rest, parent=context)  # raises on an unknown option or a bad value


@pytest.mark.parametrize(("document", "words"), CLI_REFERENCES)
def test_documented_cli_reference_names_real_options(document: str, words: list[str]) -> None:
    group = typer.main.get_group(app)
    if not words:
        return  # `personsearch` alone
    command = group.get_command(typer.Context(group), words[0])
    assert command is not None, f"{document}: no command {words[0]!r}"
    options = {o for param in command.params for o in [*param.opts, *param.secondary_opts]}
    for word in words[1:]:
        option = word.strip("[]").split("=")[0]
        assert not option.startswith("--") or option in options, f"{document}: {words[0]} has no {option}"


@pytest.mark.parametrize(("document", "words"), SCRIPTS)
def test_documented_script_exists_with_its_options(document: str, words: list[str]) -> None:
    script = ROOT / words[0]
    assert script.is_file(), f"{document}: {words[0]} does not exist"
    source = script.read_text()
    for option in (w.split("=")[0] for w in words[1:] if w.startswith("--")):
        assert f'"{option}"' in source, f"{document}: {words[0]} has no option {option}"
