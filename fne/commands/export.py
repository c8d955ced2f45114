"""`fne export`: stack a cell into an evaluation network and write a self-contained model file."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from fne.atomic import output_file
from fne.cli_options import threads_option
from fne.errors import ConfigError
from fne.genotopheno.spaces import SPACES

log = logging.getLogger(__name__)


@click.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("--pick", default="best", show_default=True,
              help="'best' (of the final Pareto front by rank-combined score) or an individual's id.")
@click.option("--genotype", "genotype_text", default=None,
              help="Export this genotype string, or a published cell (DARTS_V1, DARTS_V2, PDARTS, PC_DARTS), "
                   "instead of a run's.")
@click.option("--space", type=click.Choice(SPACES.names()), default=None,
              help="Space of --genotype (guessed from the string when left out).")
@click.option("--layers", type=int, default=None,
              help="Cells in the network (DARTS, default 20) or cells per stage N (NB201, default 5).")
@click.option("--channels", "C", type=int, default=None,
              help="Initial channels C (DARTS default 36, NB201 default 16).")
@click.option("--as-searched", is_flag=True,
              help="Keep a DARTS genotype's own stage widths and cell counts (instead of --channels/--layers).")
@click.option("--num-classes", type=int, default=10, show_default=True)
@click.option("--auxiliary/--no-auxiliary", default=None,
              help="DARTS auxiliary head on the last reduction cell (default on for DARTS; NB201 has none).")
@click.option("--drop-path", "drop_path_prob", type=float, default=None,
              help="Drop-path probability for training (default 0.2 DARTS, 0 NB201).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("model.pt"), show_default=True)
@click.option("--torch-export", "program_path", type=click.Path(path_type=Path), default=None,
              help="Also write a torch.export program (.pt2) that runs without fne (torch.export.load).")
@click.option("--force", is_flag=True, help="Replace an existing model file (and --torch-export program).")
@threads_option
def export(run_dir: Path | None, pick: str, genotype_text: str | None, space: str | None, layers: int | None,
           C: int | None, as_searched: bool, num_classes: int, auxiliary: bool | None,
           drop_path_prob: float | None, seed: int, output: Path, program_path: Path | None, force: bool) -> None:
    """Export RUN_DIR's best cell (or --pick ID, or --genotype STR) as an evaluation network to a model file."""
    import torch

    from fne.atomic import atomic_write
    from fne.export import (
        canonical_genotype,
        default_builder,
        export_program,
        genotype_from_run,
        load_model,
        save_model,
    )
    from fne.genotopheno.network import count_parameters

    if (run_dir is None) == (genotype_text is None):
        raise ConfigError("give either RUN_DIR or --genotype (not both, not neither)")
    output_file(output, "-o", overwrite=force)
    if program_path is not None:
        output_file(program_path, "--torch-export", overwrite=force)
    if run_dir is not None:
        space_name, genotype, source = genotype_from_run(run_dir, pick)
        if space is not None and space != space_name:
            raise ConfigError(f"--space {space} but {run_dir} searched the {space_name} space")
    else:
        space_name, genotype = canonical_genotype(genotype_text, space)
        source = {"genotype_argument": genotype_text}
    builder = default_builder(space_name, C, layers, num_classes=num_classes, auxiliary=auxiliary,
                              drop_path_prob=drop_path_prob, seed=seed, as_searched=as_searched)
    save_model(output, genotype, builder, source=source)
    model = load_model(output)
    click.echo(f"{output}: {space_name} {genotype}, C={builder.C} layers={builder.layers} "
               f"auxiliary={builder.auxiliary}, {count_parameters(model):,} parameters")
    if program_path is not None:
        program = export_program(model)
        atomic_write(program_path, lambda stream: torch.export.save(program, stream))
        click.echo(f"{program_path}: torch.export program (load with torch.export.load)")
