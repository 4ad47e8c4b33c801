"""The docs name every setting, environment variable and CLI command, and nothing that does not
exist (the datasette `tests/test_docs.py` idea)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

from signalvault.cli.main import cli
from signalvault.compiled import PURE_VARIABLE
from signalvault.config import ENV_ALIASES, LISTS, SECTIONS, env_name

DOCS = Path(__file__).resolve().parent.parent / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
CLI = (DOCS / "cli.md").read_text()
TABLES = {**SECTIONS, **LISTS}


def documented_settings(heading: str) -> set[str]:
    """First-column names of the table under `### <heading>`."""
    match = re.search(
        rf"^### {re.escape(heading)}\n(.*?)(?=^### |^## |\Z)", CONFIGURATION, re.M | re.S
    )
    assert match, f"docs/configuration.md has no section `### {heading}`"
    return set(re.findall(r"^\| `([a-z_]+)` \|", match.group(1), re.M))


def heading(name: str) -> str:
    return f"[{name}]" if name in SECTIONS else f"[[{name}]]"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_setting_is_documented_and_no_other(name):
    fields = {f.name for f in dataclasses.fields(TABLES[name])}
    documented = documented_settings(heading(name))
    assert fields - documented == set(), "settings missing from docs/configuration.md"
    assert documented - fields == set(), "docs/configuration.md names settings that do not exist"


def test_no_unknown_sections_are_documented():
    headings = set(re.findall(r"^### (\[\[?[a-z_]+\]\]?)$", CONFIGURATION, re.M))
    assert headings == {heading(name) for name in TABLES}


def known_variables() -> set[str]:
    names = {
        env_name(section, f.name)
        for section, cls in SECTIONS.items()
        for f in dataclasses.fields(cls)
    }
    return names | set(ENV_ALIASES) | {"SIGNALVAULT_CONFIG", PURE_VARIABLE}


def test_every_environment_variable_is_documented():
    documented = set(re.findall(r"`(SIGNALVAULT_[A-Z0-9_]+)`", CONFIGURATION))
    assert known_variables() - documented == set()


def test_docs_name_no_environment_variable_that_does_not_exist():
    for page in DOCS.glob("*.md"):
        named = set(re.findall(r"\bSIGNALVAULT_[A-Z0-9_]*[A-Z0-9]\b", page.read_text()))
        assert named - known_variables() == set(), page.name


def commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    """Every command and subcommand by its full name, e.g. `keys create`."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found.update(commands(command, prefix + name + " "))
    return found


COMMANDS = commands(cli)
# A group that also runs on its own (`export --format ...` beside `export verify`) has options too.
LEAVES = {
    name: c
    for name, c in COMMANDS.items()
    if not isinstance(c, click.Group) or c.invoke_without_command
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_cli_docs(name):
    assert f"signalvault {name}" in CLI


def cli_section(name: str) -> str:
    parts = CLI.split(f"\n## {name}\n", 1)
    assert len(parts) == 2, f"docs/cli.md has no section `## {name}`"
    return parts[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_option_is_in_the_cli_docs(name):
    section = cli_section(name)
    for param in LEAVES[name].params:
        if isinstance(param, click.Option):
            assert param.opts[0] in section, param.opts[0]
        else:
            assert param.human_readable_name in section, param.human_readable_name


def test_cli_docs_describe_no_command_that_does_not_exist():
    headings = set(re.findall(r"^## (.+)$", CLI, re.M)) - {"Exit codes and errors"}
    assert headings - set(LEAVES) == set()
