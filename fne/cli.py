"""The `fne` command line: one click group whose commands live in `fne/commands/<name>.py`.

Commands are imported only when invoked, so `fne --help` stays fast and a broken optional
dependency of one command cannot break the others. `run_command` is the one error boundary: bad input
(fne's FneError family, a file system refusal, a bad option) prints one line `error: ...` and exits 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from fne.errors import FneError
from fne.logs import VERBOSITY_KEY, configure_console
from fne.threads import prepare_openmp

# command name -> "module:attribute" of a click.Command
COMMANDS = {
    "search": "fne.commands.search:search",
    "plot-scores": "fne.commands.plot_scores:plot_scores",
    "export": "fne.commands.export:export",
    "train": "fne.commands.train:train",
    "report": "fne.commands.report:report",
    "latency-table": "fne.commands.latency_table:latency_table",
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
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """fne: training-free evolutionary neural architecture search."""
    configure_console(verbose)
    ctx.meta[VERBOSITY_KEY] = verbose  # a command with its own -v takes the larger (`fne -v search` = `fne search -v`)


def run_command(command: click.Command, args: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run a click command, turning bad input (FneError, OSError, click's errors) into one line and exit code 2."""
    # Every entry point passes here before a command body imports torch: OpenMP must see this first.
    prepare_openmp()
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except FneError as error:
        return _fail(str(error))
    except OSError as error:
        # Files that vanish, fill the disk or refuse writing after the commands' own checks passed.
        return _fail(describe_os_error(error))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as error:
        # Bad option values are bad input too: one line, no usage block.
        return _fail(error.format_message())
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    return 0


def describe_os_error(error: OSError) -> str:
    """One line naming the path(s) of an OSError and what the system said, e.g. `cannot use /proc/x: ...`."""
    reason = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"cannot use {' -> '.join(paths)}: {reason}" if paths else reason


def _fail(message: str) -> int:
    """Print `error: message` as exactly one line (a multi-line message is joined with '; ') and return 2."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    click.echo(f"error: {'; '.join(lines) or 'failed'}", err=True)
    return 2


def main() -> None:
    """Entry point of the `fne` console script."""
    sys.exit(run_command(cli, prog_name="fne"))


def plot_scores_main() -> None:
    """Entry point of the `plot_scores` console script (same as `fne plot-scores`)."""
    prepare_openmp()  # before the command's module loads torch (fne/threads.py)
    from fne.commands.plot_scores import plot_scores

    sys.exit(run_command(plot_scores, prog_name="plot_scores"))
