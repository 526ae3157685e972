"""`pynode`: the engine's command line, a thin client over its API.

Each module in node.cli.base.COMMAND_MODULES adds its commands to the `cli` group from node.cli.base
(loaded lazily: a command imports only its own module); `main` runs it and turns
engine errors into one line on stderr and Docker's exit codes (1, or 125 where a command says so).
"""

from __future__ import annotations

import sys

import click

from node.cli.base import cli
from node.errors import NodeError


def main() -> None:
    try:
        code = cli.main(standalone_mode=False, prog_name="pynode")
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(125 if exc.exit_code == 2 else exc.exit_code)
    except NodeError as exc:
        prefix = "Error response from daemon: " if getattr(exc, "from_daemon", False) else "Error: "
        click.echo(f"{prefix}{exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
