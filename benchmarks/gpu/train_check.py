"""Section 5: training throughput (fp32, AMP, channels_last) and a short seeded comparison of three DARTS cells.

Both parts run fne.training's own epoch (train_epoch: on-device augmentation, auxiliary loss, gradient
clipping, GradScaler under AMP) and, for the comparison, the whole recipe (train_model) on model files
written by fne.export, so what is timed is what `fne export` + `fne train` do.
"""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pandas as pd
import torch

from .common import REPO, Check, Section, markdown_table, synchronize, write_csv

TITLE = "5. Training"

DEFAULT_RUN_BEST = REPO / "experiments" / "results" / "darts_default" / "best.json"
RECIPE_EPOCHS, RECIPE_IMAGES = 600, 50_000  # DARTS's CIFAR-10 evaluation: 600 epochs over 50,000 images
NB201_BEST = "C+CC+kCC"


def variants(check: Check) -> list[tuple[str, bool, bool]]:
    """(label, amp, channels_last) of every measured variant; AMP is fne's CUDA-only path."""
    found = [("fp32", False, False), ("fp32 + channels_last", False, True)]
    if check.cuda:
        found += [("AMP (fne train's default)", True, False), ("AMP + channels_last", True, True)]
    return found


def images_per_second(check: Check, genotype: str, builder, amp: bool, channels_last: bool, steps: int) -> float:
    """Training images per second of fne.training.train_epoch on `steps` batches (after one warm-up batch)."""
    from fne.data.cifar10 import load_cifar10, subset
    from fne.export import build_model
    from fne.training import TrainConfig, train_epoch

    config = TrainConfig(batch_size=check.sizes.train_batch, device=check.device, amp=amp)
    model = build_model(genotype, builder).to(check.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = subset(load_cifar10(check.data_dir, "train"), config.batch_size * (steps + 1), check.seed)
    images = torch.from_numpy(np.ascontiguousarray(data.images)).to(check.device)
    labels = torch.from_numpy(data.labels.copy()).to(check.device)
    optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if amp and check.cuda else None
    shuffle = torch.Generator().manual_seed(check.seed)
    augment = torch.Generator(device=check.device).manual_seed(check.seed + 1)
    warm = config.batch_size
    train_epoch(model, images[:warm], labels[:warm], optimizer, config, shuffle, augment, scaler)
    synchronize(check.device)
    started = time.perf_counter()
    train_epoch(model, images[warm:], labels[warm:], optimizer, config, shuffle, augment, scaler)
    synchronize(check.device)
    return (len(labels) - warm) / (time.perf_counter() - started)


def throughput(check: Check) -> pd.DataFrame:
    """Images/s of the DARTS evaluation network and of NB201's TinyNetwork under every variant."""
    from fne.export import canonical_genotype, default_builder

    sizes = check.sizes
    darts_v2 = canonical_genotype("DARTS_V2", "darts")[1]
    networks = [(f"DARTS_V2 evaluation network C={sizes.darts_C}, {sizes.darts_layers} layers, auxiliary", darts_v2,
                 default_builder("darts", C=sizes.darts_C, layers=sizes.darts_layers, seed=check.seed)),
                (f"NB201 TinyNetwork {NB201_BEST} C={sizes.nb201_C}, N={sizes.nb201_layers}", NB201_BEST,
                 default_builder("nb201", C=sizes.nb201_C, layers=sizes.nb201_layers, seed=check.seed))]
    rows = []
    for name, genotype, builder in networks:
        for label, amp, channels_last in variants(check):
            ips = images_per_second(check, genotype, builder, amp, channels_last, sizes.throughput_steps)
            rows.append({"network": name, "variant": label, "images/s": ips,
                         "600-epoch recipe, hours": RECIPE_EPOCHS * RECIPE_IMAGES / ips / 3600})
    return pd.DataFrame(rows)


def cells(check: Check) -> list[tuple[str, str]]:
    """(label, DARTS genotype) of the comparison: the given or searched cell, DARTS_V2 and a seeded random cell."""
    from fne.export import canonical_genotype, genotype_from_run
    from fne.genotopheno.spaces import get_space

    if check.cell is not None:
        first = ("--cell", canonical_genotype(check.cell, "darts")[1])
    elif check.run_dir is not None:
        space, genotype, _ = genotype_from_run(check.run_dir, "best")
        if space != "darts":
            raise ValueError(f"--run-dir {check.run_dir} searched the {space} space; the comparison trains DARTS cells")
        first = (f"best of {check.run_dir}", canonical_genotype(genotype, space)[1])
    else:
        first = ("default run's best (experiments/results/darts_default)",
                 json.loads(DEFAULT_RUN_BEST.read_text())["genotype"])
    random_cell = get_space("darts").sample(np.random.default_rng(check.seed))
    return [first, ("DARTS_V2", canonical_genotype("DARTS_V2", "darts")[1]),
            (f"random cell (seed {check.seed})", random_cell)]


def compare(check: Check, amp: bool) -> tuple[pd.DataFrame, int]:
    """Train each cell for the same number of epochs (as many as fit --train-minutes); one row per cell."""
    from fne.data.cifar10 import load_cifar10
    from fne.export import default_builder, load_model, save_model
    from fne.genotopheno.network import count_parameters
    from fne.training import TrainConfig, train_model

    sizes = check.sizes
    builder = default_builder("darts", C=sizes.compare_C, layers=sizes.compare_layers, seed=check.seed)
    chosen = cells(check)
    # The recipe's 50,000 images, or fewer when --data-dir holds fewer (an .npz subset, say).
    available = len(load_cifar10(check.data_dir, "train")) if check.data_dir else RECIPE_IMAGES
    train_images = sizes.train_images or min(RECIPE_IMAGES, available) - sizes.val_images
    # Seconds per epoch of each cell from a short throughput probe; validation is a forward pass, ~1/3 the work.
    epoch_seconds = [(train_images + sizes.val_images / 3)
                     / images_per_second(check, g, builder, amp, False, max(3, sizes.throughput_steps // 3))
                     for _, g in chosen]
    epochs = max(1, math.floor(60.0 * check.train_minutes / sum(epoch_seconds)))
    epochs = min(epochs, sizes.max_epochs or epochs)
    config = TrainConfig(epochs=epochs, batch_size=sizes.train_batch, train_images=sizes.train_images,
                         val_images=sizes.val_images, seed=check.seed, device=check.device, amp=amp)
    rows = []
    for label, genotype in chosen:
        path = check.out / "train" / (re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")[:40] + ".pt")
        save_model(path, genotype, builder, source={"gpu_check": label})
        started = time.perf_counter()
        result = train_model(path, check.data_dir, config, progress=False)
        last = result.log.iloc[-1]
        rows.append({"cell": label, "genotype": genotype, "params": count_parameters(load_model(path)),
                     "epochs": epochs, "final val acc %": last["val_acc"],
                     "best val acc %": result.log["val_acc"].max(), "final train acc %": last["train_acc"],
                     "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows), epochs


def run(check: Check) -> Section:
    """Throughput table, 600-epoch estimate and the cell comparison; write training_*.csv."""
    section = Section(TITLE)
    speed = throughput(check)
    section.files.append(write_csv(speed, check, "training_throughput.csv"))
    comparison, epochs = compare(check, amp=check.cuda)
    section.files.append(write_csv(comparison, check, "training_comparison.csv"))
    sizes = check.sizes
    data = check.data_dir or "the 1,000 images shipped with fne"
    section.markdown = "\n\n".join([
        f"Throughput of fne.training.train_epoch (batch {sizes.train_batch}, on-device crop/flip/cutout, auxiliary "
        "loss, gradient clip) "
        f"after one warm-up batch, {sizes.throughput_steps} batches timed, on {check.device}. The 600-epoch "
        f"estimate is 600 x 50,000 training images at that rate (per-epoch validation not included).",
        markdown_table(speed),
        f"Seeded comparison at C={sizes.compare_C}, {sizes.compare_layers} layers (auxiliary head, drop-path 0.2, "
        f"seed {check.seed}), {epochs} epoch(s) each, the most that fit --train-minutes {check.train_minutes:g} for "
        f"all three; training images from {data}, {sizes.val_images} held out for validation"
        + (", AMP" if check.cuda else "") + ". Model files and per-epoch logs: `train/`.",
        markdown_table(comparison),
        "A few epochs rank cells only roughly; the 600-epoch recipe is what the published accuracies use.",
    ])
    return section
