"""`fne export`: stack a cell into an evaluation network and write a self-contained model file."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import click

from fne.atomic import output_file
from fne.cli_options import config_options, config_values, threads_option
from fne.errors import ConfigError
from fne.export import ExportConfig

log = logging.getLogger(__name__)


@click.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@config_options(ExportConfig)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("model.pt"), show_default=True)
@click.option("--torch-export", "program_path", type=click.Path(path_type=Path), default=None,
              help="Also write a torch.export program (.pt2) that runs without fne (torch.export.load).")
@click.option("--force", is_flag=True, help="Replace an existing model file (and --torch-export program).")
@threads_option
def export(run_dir: Path | None, output: Path, program_path: Path | None, force: bool, **options) -> None:
    """Export RUN_DIR's best cell (or --pick ID, or --genotype STR) as an evaluation network to a model file."""
    import torch

    from fne.atomic import atomic_write
    from fne.export import (
        canonical_genotype,
        export_data,
        export_program,
        genotype_from_run,
        load_model,
        read_model_file,
        save_model,
    )
    from fne.genotopheno.network import count_parameters

    config = ExportConfig(**config_values(ExportConfig, options))
    genotype_text, space, pick = config.genotype, config.space, config.pick
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
    data = export_data(config, run_dir)
    num_classes = config.num_classes or (data["num_classes"] if data else 10)
    builder = dataclasses.replace(config, num_classes=num_classes).builder(space_name)
    save_model(output, genotype, builder, source=source, data=data)
    model, size = load_model(output), read_model_file(output).input_size
    click.echo(f"{output}: {space_name} {genotype}, C={builder.C} layers={builder.layers} "
               f"auxiliary={builder.auxiliary}, {num_classes} classes at {size[0]}x{size[1]}, "
               f"{count_parameters(model):,} parameters")
    if program_path is not None:
        program = export_program(model, torch.zeros(2, 3, *size))
        atomic_write(program_path, lambda stream: torch.export.save(program, stream))
        click.echo(f"{program_path}: torch.export program (load with torch.export.load)")
