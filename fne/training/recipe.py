"""The DARTS CIFAR-10 training recipe shared by `fne train`, the tournaments and the finalists.

Recipe (Liu et al., "DARTS", ICLR 2019, quark0/darts `cnn/train.py`): SGD with momentum 0.9 and weight
decay 3e-4, lr 0.025 on a cosine schedule to 0, batch 96, gradient-norm clip 5, drop-path rising
linearly from 0 to its maximum over the epochs, auxiliary loss weight 0.4, and the CIFAR augmentation
random crop (padding 4), horizontal flip and cutout 16 (DeVries & Taylor 2017). The augmentation runs
on whole batches on the device (no torchvision). On CUDA a step runs in mixed precision (torch.autocast
+ GradScaler). This module holds the settings (`TrainConfig`), the augmentation, the optimiser set-up
(`Optimisation`) and one epoch of training and evaluation; train.py runs them for `fne train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fne.config_meta import cli, data_field, image_size_field
from fne.data.cifar10 import normalize
from fne.errors import ConfigError

VAL_SOURCES = ("holdout", "test")  # images held out of the training set, or the test batch


@dataclass(frozen=True)
class TrainConfig:
    """The DARTS CIFAR-10 evaluation recipe; None sizes mean "all" (train) and "10% held out" (val)."""

    epochs: int = field(default=600, metadata=cli("Training epochs.", min=1))
    batch_size: int = field(default=96, metadata=cli("Images per training step.", min=2))
    lr: float = field(default=0.025, metadata=cli("Initial SGD learning rate (cosine to 0).", min=0.0,
                                                  min_open=True))
    lr_min: float = 0.0
    momentum: float = field(default=0.9, metadata=cli("SGD momentum.", min=0.0, max=1.0, max_open=True))
    weight_decay: float = field(default=3e-4, metadata=cli("SGD weight decay.", min=0.0))
    grad_clip: float = field(default=5.0, metadata=cli("Gradient-norm clip (0: off).", min=0.0))
    crop_padding: int = 4
    flip: bool = True
    cutout: int = field(default=16, metadata=cli("Cutout length (0: off).", min=0))
    drop_path_prob: float | None = field(default=None, metadata=cli(  # None: the model file's builder value
        "Final drop-path probability (default: the model file's).", flag="--drop-path", min=0.0, max=1.0,
        max_open=True))
    auxiliary_weight: float = field(default=0.4, metadata=cli(
        "Weight of the auxiliary-head loss (0: off; only for models with the head).", min=0.0))
    train_images: int | None = field(default=None, metadata=cli(
        "Train on a balanced subset of this many images.", min=2))
    val_images: int | None = field(default=None, metadata=cli(
        "Validation images (default 10% held out, or the whole test batch).", min=1))
    val_source: str = field(default="holdout", metadata=cli(
        "Validate on images held out of the training set, or on the test batch.", choices=VAL_SOURCES))
    seed: int = field(default=0, metadata=cli("Seed of the data order, augmentation and drop-path."))
    device: str = field(default="auto", metadata=cli("auto (CUDA when available), cpu, cuda or cuda:N.",
                                                     device=True))
    amp: bool = field(default=True, metadata=cli("Mixed precision (CUDA only)."))
    data: str | None = data_field()  # its classes must be the model file's
    image_size: int | None = image_size_field(None, "Side in pixels the images are resized to (0 or native: the "
                                                    "data's own; default: the model file's input size).")

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs={self.epochs} must be at least 1"),
            (self.batch_size >= 2, f"batch_size={self.batch_size} must be at least 2 (batch norm)"),
            (self.lr > 0 and 0 <= self.lr_min <= self.lr, f"need lr > 0 and 0 <= lr_min <= lr, got {self.lr}, "
                                                          f"{self.lr_min}"),
            (0 <= self.momentum < 1, f"momentum={self.momentum} must be in [0, 1)"),
            (self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0"),
            (self.crop_padding >= 0 and self.cutout >= 0, "crop_padding and cutout must be >= 0"),
            (self.drop_path_prob is None or 0 <= self.drop_path_prob < 1,
             f"drop_path_prob={self.drop_path_prob} must be in [0, 1)"),
            (self.auxiliary_weight >= 0, f"auxiliary_weight={self.auxiliary_weight} must be >= 0"),
            (self.train_images is None or self.train_images >= 2, f"train_images={self.train_images} must be >= 2"),
            (self.val_images is None or self.val_images >= 1, f"val_images={self.val_images} must be >= 1"),
            (self.val_source in ("holdout", "test"), f"val_source={self.val_source!r}: expected holdout or test"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)



# ---------------------------------------------------------------- augmentation (batched tensor ops)
def crop_at(images: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad NHWC images by `padding` and cut each back to its size at its (row, col) offset."""
    n, h, w, _ = images.shape
    padded = F.pad(images, (0, 0, padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=images.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """torchvision's RandomCrop(size, padding) on a whole NHWC batch: uniform offsets in 0..2*padding."""
    if padding == 0:
        return images
    offsets = torch.randint(0, 2 * padding + 1, (images.shape[0], 2), generator=generator,
                            device=images.device)
    return crop_at(images, offsets, padding)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each NHWC image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(2), images)


def cutout_at(x: torch.Tensor, centers: torch.Tensor, length: int) -> torch.Tensor:
    """Zero a length x length square (clipped at the border) around each NCHW image's (row, col) centre."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    # DARTS utils.Cutout: rows clip(y - L//2, 0, h) .. clip(y + L//2, 0, h), end exclusive.
    in_rows = (rows >= centers[:, 0, None] - length // 2) & (rows < centers[:, 0, None] + length // 2)
    in_cols = (cols >= centers[:, 1, None] - length // 2) & (cols < centers[:, 1, None] + length // 2)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


def random_cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) on a normalised NCHW batch: one square per image, centre uniform."""
    if length == 0:
        return x
    n, _, h, w = x.shape
    limits = torch.tensor([h, w], device=x.device)
    centers = (torch.rand(n, 2, generator=generator, device=x.device) * limits).long()
    return cutout_at(x, centers, length)


Stats = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel (mean, std) of pixels in [0, 1]


def normalize_with(images: torch.Tensor, stats: Stats | None = None) -> torch.Tensor:
    """uint8 NHWC images -> float32 NCHW standardised by the data's (mean, std); None: CIFAR-10's constants."""
    if stats is None:
        return normalize(images)
    x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # cifar10.normalize's arithmetic, in its order
    mean = torch.tensor(stats[0], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(stats[1], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True,
                  cutout: int = 16, stats: Stats | None = None) -> torch.Tensor:
    """uint8 NHWC batch -> crop, flip, normalise (by `stats`), cutout (DARTS's order) -> float32 NCHW input."""
    images = random_crop(images, padding, generator)
    if flip:
        images = random_flip(images, generator)
    return random_cutout(normalize_with(images, stats), cutout, generator)


# ---------------------------------------------------------------- one epoch
def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, auxiliary_weight: float):
    logits, aux = model.forward_with_aux(x)
    loss = F.cross_entropy(logits, y)
    if aux is not None and auxiliary_weight > 0:
        loss = loss + auxiliary_weight * F.cross_entropy(aux, y)
    return logits, loss


def train_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                config: TrainConfig, shuffle: torch.Generator, augment: torch.Generator,
                scaler: torch.amp.GradScaler | None, progress: bool = False, desc: str = "",
                stats: Stats | None = None) -> tuple[float, float]:
    """One pass over uint8 NHWC training images (normalised by `stats`); returns (mean loss, accuracy %)."""
    model.train()
    device = images.device
    order = torch.randperm(len(labels), generator=shuffle).to(device)
    total_loss, correct, seen = 0.0, 0, 0
    batches = range(0, len(order), config.batch_size)
    for start in tqdm(batches, desc=desc, disable=not progress, leave=False, unit="batch"):
        index = order[start:start + config.batch_size]
        if len(index) < 2:  # a single image breaks batch norm in the auxiliary head
            continue
        x = augment_batch(images[index], augment, config.crop_padding, config.flip, config.cutout, stats)
        y = labels[index]
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=scaler is not None):
            logits, loss = loss_of(model, x, y, config.auxiliary_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        with torch.no_grad():
            main_loss = F.cross_entropy(logits.float(), y)
        total_loss += float(main_loss) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
    return total_loss / max(seen, 1), 100.0 * correct / max(seen, 1)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             amp: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, accuracy %) of the eval-mode network on normalised NCHW images."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=amp):
            logits = model(xb).float()
        total_loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), 100.0 * correct / len(y)


# ---------------------------------------------------------------- optimiser set-up
def generator(device: torch.device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


@dataclass
class Optimisation:
    """The optimiser, LR schedule, AMP scaler and two RNG streams of a run: a checkpoint's state besides the model."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    shuffle: torch.Generator
    augment: torch.Generator

    @classmethod
    def start(cls, model: nn.Module, config: TrainConfig, device: torch.device, use_amp: bool) -> Optimisation:
        """DARTS's SGD, cosine schedule; shuffling on the CPU (device-independent order), augmenting on the device."""
        optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr_min)
        return cls(optimizer, scheduler, torch.amp.GradScaler("cuda") if use_amp else None,
                   generator(torch.device("cpu"), config.seed), generator(device, config.seed + 1))

    def restore(self, state: dict[str, Any], device: torch.device, config: TrainConfig) -> None:
        """Load a checkpoint's optimiser, schedule, scaler and RNG states."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.shuffle.set_state(state["shuffle_rng"])
        if state.get("augment_device") == str(device):
            self.augment.set_state(state["augment_rng"])
        else:  # a generator state only fits its own device type; reseed deterministically from the epoch
            self.augment.manual_seed(config.seed + 1 + 1000003 * int(state["epoch"]))

    def state(self, device: torch.device) -> dict[str, Any]:
        """The checkpoint entries of these parts."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "shuffle_rng": self.shuffle.get_state(), "augment_rng": self.augment.get_state(),
                "augment_device": str(device)}
