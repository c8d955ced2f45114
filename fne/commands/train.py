"""`fne train`: train an exported model file with the DARTS evaluation recipe."""

from __future__ import annotations

from pathlib import Path

import click

from fne.cli_options import device_option, threads_option


@click.command()
@click.argument("model_file", type=click.Path(path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="cifar-10-batches-py folder (or its parent); default: the 1,000 images shipped with fne.")
@click.option("--epochs", type=int, default=600, show_default=True)
@click.option("--batch-size", type=int, default=96, show_default=True)
@click.option("--lr", type=float, default=0.025, show_default=True, help="Initial SGD learning rate (cosine to 0).")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=3e-4, show_default=True)
@click.option("--grad-clip", type=float, default=5.0, show_default=True)
@click.option("--cutout", type=int, default=16, show_default=True, help="Cutout length (0: off).")
@click.option("--drop-path", "drop_path_prob", type=float, default=None,
              help="Final drop-path probability (default: the model file's).")
@click.option("--auxiliary-weight", type=float, default=0.4, show_default=True,
              help="Weight of the auxiliary-head loss (0: off; only for models with the head).")
@click.option("--train-images", type=int, default=None, help="Train on a balanced subset of this many images.")
@click.option("--val-images", type=int, default=None,
              help="Validation images (default 10% held out, or the whole test batch).")
@click.option("--val-source", type=click.Choice(["holdout", "test"]), default="holdout", show_default=True,
              help="Validate on images held out of the training set, or on the test batch.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@threads_option
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint of an interrupted run.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the trained model here (default: back into MODEL_FILE).")
@click.option("--log", "log_path", type=click.Path(path_type=Path), default=None,
              help="Per-epoch CSV log (default: OUTPUT with suffix .train.csv).")
@click.option("--checkpoint", "checkpoint_path", type=click.Path(path_type=Path), default=None,
              help="Per-epoch checkpoint (default: OUTPUT with suffix .ckpt.pt).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(model_file: Path, data_dir: Path | None, epochs: int, batch_size: int, lr: float, momentum: float,
          weight_decay: float, grad_clip: float, cutout: int, drop_path_prob: float | None, auxiliary_weight: float,
          train_images: int | None, val_images: int | None, val_source: str, seed: int, device: str, amp: bool,
          resume: bool, output: Path | None, log_path: Path | None, checkpoint_path: Path | None,
          progress: bool) -> None:
    """Train MODEL_FILE on CIFAR-10 (SGD, cosine lr, cutout, drop-path, auxiliary loss, grad clip 5)."""
    from fne.training import TrainConfig, train_model

    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         grad_clip=grad_clip, cutout=cutout, drop_path_prob=drop_path_prob,
                         auxiliary_weight=auxiliary_weight, train_images=train_images, val_images=val_images,
                         val_source=val_source, seed=seed, device=device, amp=amp)
    result = train_model(model_file, data_dir, config, output=output, resume=resume, checkpoint_path=checkpoint_path,
                         log_path=log_path, progress=progress)
    for row in result.log.itertuples(index=False):
        click.echo(f"epoch {row.epoch:3d}  lr {row.lr:.5f}  train loss {row.train_loss:.4f} acc {row.train_acc:6.2f}%  "
                   f"val loss {row.val_loss:.4f} acc {row.val_acc:6.2f}%  {row.seconds:6.1f} s")
    click.echo(f"{result.model_path}: trained weights ({result.device}); log {result.log_path}, "
               f"checkpoint {result.checkpoint_path}")
