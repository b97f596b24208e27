"""Every `streamproc` command and subcommand, found by walking the parser's tree, answers --help
with exit 0 and its own usage; the top-level help says what each exit code means; and each
group's help lists exactly the actions expected of it."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from streamproc.cli import main
from streamproc.cli.parser import _parser

# Each command, in the order the help lists them, and its actions (none: it takes no ACTION).
COMMANDS: dict[str, tuple[str, ...]] = {
    "worker": (),
    "topics": ("apply", "list"),
    "produce": (),
    "tail": (),
    "dlq": ("inspect", "redrive"),
    "generate": (),
    "demo": (),
    "run-file": (),
    "dataset": (),
    "features": ("get",),
    "state": ("show", "accept"),
    "model": ("list", "promote", "rollback", "auto"),
    "top": (),
    "replay": (),
    "promote": (),
    "rollback": (),
    "versions": (),
    "bench": (),
    "schemas": ("check",),
    "erase": (),
}


def _walk(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The words of every command and subcommand below `parser`, as its subparsers hold them."""
    found = []
    for action in parser._actions:  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*words, name))
                found.extend(_walk(sub, (*words, name)))
    return found


EVERY_COMMAND = _walk(_parser())


def _help(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _listed(help_text: str) -> list[str]:
    """The names under COMMAND or ACTION: indented by four, where wrapped help lines are deeper."""
    return re.findall(r"^ {4}(\S+)", help_text, flags=re.MULTILINE)


@pytest.mark.parametrize("words", EVERY_COMMAND, ids=" ".join)
def test_help_shows_the_commands_own_usage(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _help(capsys, *words).startswith(f"usage: streamproc {' '.join(words)} [-h]")


def test_the_walk_finds_every_command_and_action_there_is() -> None:
    """The hand list below only orders the help: the walk must find at least all of it."""
    listed: list[tuple[str, ...]] = [(command,) for command in COMMANDS]
    listed += [(command, action) for command, actions in COMMANDS.items() for action in actions]
    assert set(listed) <= set(EVERY_COMMAND)
    assert len(EVERY_COMMAND) == len(set(EVERY_COMMAND)) >= len(listed)


def test_the_help_says_what_each_exit_code_means(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help(capsys).split())
    for code, meaning in (
        (0, "done"),
        (1, "failure"),
        (2, "usage or configuration"),
        (3, "infrastructure"),
    ):
        assert f"{code} {meaning}" in text


def test_the_top_level_help_lists_every_command_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _listed(_help(capsys)) == list(COMMANDS)


@pytest.mark.parametrize("command", [name for name, actions in COMMANDS.items() if actions])
def test_a_groups_help_lists_its_actions(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _listed(_help(capsys, command)) == list(COMMANDS[command])


def test_the_command_line_loads_faust_only_for_the_worker() -> None:
    """In a fresh interpreter: this test session may have imported Faust already."""
    probe = (
        "import sys, streamproc.cli; "
        "print(sorted({'faust', 'streamproc.worker'} & set(sys.modules)))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
