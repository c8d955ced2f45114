"""`fne train`: train an exported model file with the DARTS evaluation recipe."""

from __future__ import annotations

from pathlib import Path

import click

from fne.cli_options import config_options, config_values, threads_option
from fne.training.recipe import TrainConfig


@click.command()
@click.argument("model_file", type=click.Path(path_type=Path))
@config_options(TrainConfig)
@threads_option
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an interrupted run.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the trained model here (default: back into MODEL_FILE).")
@click.option("--log", "log_path", type=click.Path(path_type=Path), default=None,
              help="Per-epoch CSV log (default: OUTPUT with suffix .train.csv).")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(path_type=Path), default=None,
              help="Per-epoch checkpoint (default: OUTPUT with suffix .ckpt.pt).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(model_file: Path, resume: bool, output: Path | None, log_path: Path | None,
          checkpoint_path: Path | None, progress: bool, **options) -> None:
    """Train MODEL_FILE on --data (SGD, cosine lr, cutout, drop-path, auxiliary loss, grad clip 5)."""
    from fne.training.train import train_model

    config = TrainConfig(**config_values(TrainConfig, options))
    result = train_model(model_file, None, config, output=output, resume=resume, checkpoint_path=checkpoint_path,
                         log_path=log_path, progress=progress)
    for row in result.log.itertuples(index=False):
        click.echo(f"epoch {row.epoch:3d}  lr {row.lr:.5f}  train loss {row.train_loss:.4f} acc {row.train_acc:6.2f}%  "
                   f"val loss {row.val_loss:.4f} acc {row.val_acc:6.2f}%  {row.seconds:6.1f} s")
    click.echo(f"{result.model_path}: trained weights ({result.device}); log {result.log_path}, "
               f"checkpoint {result.checkpoint_path}")
