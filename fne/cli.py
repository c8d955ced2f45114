"""The `fne` command line: one click group whose commands live in `fne/commands/<name>.py`.

Commands are imported only when invoked, so `fne --help` stays fast and a broken optional
dependency of one command cannot break the others. Errors of the FneError family print one line.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from fne.errors import FneError

# command name -> "module:attribute" of a click.Command
COMMANDS = {
    "search": "fne.commands.search:search",
    "plot-scores": "fne.commands.plot_scores:plot_scores",
    "export": "fne.commands.export:export",
    "train": "fne.commands.train:train",
    "report": "fne.commands.report:report",
}


class LazyGroup(click.Group):
    """A click group that imports each command's module on first use (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """fne: training-free evolutionary neural architecture search."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_command(command: click.Command, args: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run a click command, turning fne's own errors into one line on stderr and exit code 2."""
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except FneError as error:
        click.echo(f"error: {error}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.UsageError as error:
        # Bad option values are bad input too: one line, no usage block.
        click.echo(f"error: {error.format_message()}", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    return 0


def main() -> None:
    """Entry point of the `fne` console script."""
    sys.exit(run_command(cli, prog_name="fne"))


def plot_scores_main() -> None:
    """Entry point of the `plot_scores` console script (same as `fne plot-scores`)."""
    from fne.commands.plot_scores import plot_scores

    sys.exit(run_command(plot_scores, prog_name="plot_scores"))
