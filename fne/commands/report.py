"""`fne report`: the Markdown page and figures of a search run directory."""

from __future__ import annotations

from pathlib import Path

import click

from fne.atomic import output_folder


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder of the report (default: RUN_DIR/report).")
def report(run_dir: Path, output: Path | None) -> None:
    """Write RUN_DIR/report/README.md with PNG figures of the search (fronts, scores, strategies, timings, cells)."""
    from fne.reporting import build_report

    if output is not None:  # the default, RUN_DIR/report, is checked with the run directory itself
        output_folder(output, "-o")
    page = build_report(run_dir, output)
    figures = sorted(p.name for p in page.parent.glob("*.png"))
    click.echo(f"{page}: {len(figures)} figures ({', '.join(figures)})")
