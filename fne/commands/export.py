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
CHECK_IMAGES = 32  # real images the ONNX file is checked on


@click.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@config_options(ExportConfig)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("model.pt"), show_default=True)
@click.option("--torch-export", "program_path", type=click.Path(path_type=Path), default=None,
              help="Also write a torch.export program (.pt2) that runs without fne (torch.export.load).")
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path), default=None,
              help="Also write the network as ONNX (eval mode, no auxiliary head, dynamic batch), checked in "
                   "onnxruntime on images from --data, with PyTorch's and onnxruntime's latency on this machine "
                   "(needs pip install -e \".[onnx]\").")
@click.option("--onnx-tolerance", type=click.FloatRange(min=0.0), default=1e-4, show_default=True,
              help="Largest |logit difference| between onnxruntime and PyTorch that --onnx accepts.")
@click.option("--force", is_flag=True, help="Replace an existing model file (and --torch-export program, --onnx file).")
@threads_option
def export(run_dir: Path | None, output: Path, program_path: Path | None, onnx_path: Path | None,
           onnx_tolerance: float, force: bool, **options) -> None:
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
    if onnx_path is not None:
        from fne.deploy.onnx_export import require_onnx

        output_file(onnx_path, "--onnx", overwrite=force)
        require_onnx()  # a missing extra is refused before any work
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
    if onnx_path is not None:
        for line in _onnx_export(model, onnx_path, config.data, size, onnx_tolerance):
            click.echo(line)


def _onnx_export(model, path: Path, data: str | None, size: tuple[int, int], tolerance: float) -> list[str]:
    """Write and check the ONNX file, time both runtimes; the summary's lines."""
    import torch

    from fne.data.batches import probe_batch
    from fne.data.source import open_data
    from fne.deploy.onnx_export import session, write_onnx
    from fne.deploy.runtime_latency import runtime_latencies

    dataset = open_data(data, size[0])
    images, _ = probe_batch(dataset, min(CHECK_IMAGES, len(dataset.train_labels)), seed=0)
    model_bytes, check = write_onnx(model, path, images, tolerance)
    figures, clock = runtime_latencies(model, session(model_bytes), size)
    threads = torch.get_num_threads()
    timed = ", ".join(f"{f.runtime} {f.ms_per_image:.3f} ms/image at batch 1, {f.images_per_second:,.0f} images/s "
                      f"at batch 64" for f in figures)
    return [f"{path}: ONNX opset {check.opset}, batch dynamic, no auxiliary head; onnxruntime "
            f"{check.onnxruntime_version} matches PyTorch on {check.images} images of {dataset.path}: max |logit "
            f"difference| {check.max_abs_difference:.2e} <= {check.tolerance:g}",
            f"latency on this cpu, {threads} thread{'s' if threads > 1 else ''} ({clock} time, median): {timed}"]
