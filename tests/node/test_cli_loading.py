"""`pynode` loads a command's module only when that command runs; the name-to-module map stays true."""

from __future__ import annotations

import subprocess
import sys

import click

from node.cli import base


def test_every_mapped_command_is_defined_by_its_module() -> None:
    group = base.cli
    ctx = click.Context(group)
    group.list_commands(ctx)  # loads every module
    for name, module in base._COMMAND_MODULE.items():
        command = group.commands.get(name)
        assert command is not None, f"{name} is mapped to node.cli.{module} but no module defines it"
        assert command.callback is not None
        assert command.callback.__module__ == f"node.cli.{module}", name


def test_a_command_imports_only_its_module_and_not_httpx() -> None:
    probe = (
        "import sys, click\n"
        "from node.cli.base import cli\n"
        "cli.get_command(click.Context(cli), 'run')\n"
        "print(sorted(m for m in sys.modules if m.startswith('node.cli.') or m in ('httpx', 'rich')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # noqa: S307 - our own probe's repr of a list of names
    assert "node.cli.containers" in loaded
    assert not {"node.cli.images", "node.cli.networks", "node.cli.volumes", "httpx", "rich"} & set(loaded)


def test_help_lists_commands_of_every_module() -> None:
    out = subprocess.run([sys.executable, "-c", "from node.cli import main; main()", "--help"],
                         capture_output=True, text=True).stdout
    for name in ("run", "images", "network", "volume", "version"):
        assert f"  {name} " in out
