"""Training: batched augmentation against per-image oracles, a short real run whose loss falls, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import fne.training.train as training
from fne.data.cifar10 import load_cifar10, normalize
from fne.errors import CheckpointError, ConfigError
from fne.export import default_builder, load_model, read_model_file, save_model
from fne.training import (
    LOG_COLUMNS,
    TrainConfig,
    augment_batch,
    crop_at,
    cutout_at,
    random_crop,
    random_cutout,
    random_flip,
    train_model,
)


@pytest.fixture(scope="module")
def real_images() -> torch.Tensor:
    return torch.from_numpy(load_cifar10(None).images[:16].copy())  # uint8 NHWC, real CIFAR-10


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_matches_per_image_numpy_oracle(real_images):
    offsets = torch.tensor([[0, 0], [8, 8], [3, 5], [8, 0]] * 4)
    cropped = crop_at(real_images, offsets, 4).numpy()
    for image, (dy, dx), out in zip(real_images.numpy(), offsets.tolist(), cropped, strict=True):
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))  # torchvision RandomCrop(32, padding=4): zero fill
        np.testing.assert_array_equal(out, padded[dy:dy + 32, dx:dx + 32])


def test_cutout_matches_darts_cutout_oracle():
    x = torch.randn(5, 3, 32, 32)
    centers = torch.tensor([[0, 0], [31, 31], [16, 10], [7, 30], [20, 2]])
    out = cutout_at(x, centers, 16).numpy()
    for image, (y, x0), result in zip(x.numpy(), centers.tolist(), out, strict=True):
        mask = np.ones((32, 32), np.float32)  # DARTS utils.Cutout, one hole
        y1, y2 = np.clip(y - 8, 0, 32), np.clip(y + 8, 0, 32)
        x1, x2 = np.clip(x0 - 8, 0, 32), np.clip(x0 + 8, 0, 32)
        mask[y1:y2, x1:x2] = 0.0
        np.testing.assert_array_equal(result, image * mask)


def test_flip_mirrors_or_keeps_each_image(real_images):
    flipped = random_flip(real_images, _generator(0))
    mirrored = [bool(torch.equal(f, r.flip(1))) for f, r in zip(flipped, real_images, strict=True)]
    kept = [bool(torch.equal(f, r)) for f, r in zip(flipped, real_images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert any(mirrored) and any(kept)


def test_augmentation_shapes_and_determinism(real_images):
    a = augment_batch(real_images, _generator(7))
    b = augment_batch(real_images, _generator(7))
    c = augment_batch(real_images, _generator(8))
    assert a.shape == (16, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    # with every random op off, it is exactly the normalisation
    assert torch.equal(augment_batch(real_images, _generator(0), padding=0, flip=False, cutout=0),
                       normalize(real_images))
    assert random_crop(real_images, 4, _generator(1)).shape == real_images.shape
    holes = (random_cutout(torch.ones(16, 3, 32, 32), 16, _generator(2)) == 0).sum(dim=(1, 2, 3)) // 3
    assert (holes >= 8 * 8).all() and (holes <= 16 * 16).all()  # a clipped square


TINY = dict(batch_size=32, train_images=96, val_images=64, device="cpu", seed=0)


@pytest.fixture()
def tiny_model(tmp_path):
    return save_model(tmp_path / "m.pt", "C+CC+kCC", default_builder("nb201", 8, 1))


def test_short_training_on_real_images_lowers_the_loss(tiny_model, tmp_path):
    # no augmentation and a fixed small set, so six epochs must fit it better than the first
    config = TrainConfig(epochs=6, lr=0.05, crop_padding=0, flip=False, cutout=0, **TINY)
    out = tmp_path / "trained.pt"
    result = train_model(tiny_model, None, config, output=out)
    log = pd.read_csv(result.log_path)
    assert list(log.columns) == list(LOG_COLUMNS) and list(log["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0] - 0.1
    np.testing.assert_allclose(log["lr"].iloc[0], 0.05)  # cosine: starts at lr ...
    assert log["lr"].is_monotonic_decreasing  # ... and decays
    stored = read_model_file(out)
    assert stored.training["epochs"] == 6 and stored.training["train_images"] == 96
    before, after = load_model(tiny_model), load_model(out)
    assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters(), strict=True))


def test_darts_model_trains_with_auxiliary_head_and_drop_path(tmp_path):
    path = save_model(tmp_path / "d.pt", "DARTS_V2", default_builder("darts", 8, 5, drop_path_prob=0.2))
    config = TrainConfig(epochs=1, **{**TINY, "train_images": 64, "val_images": 32})
    result = train_model(path, None, config)
    assert result.log["train_loss"].notna().all() and result.model_path == path


def test_resume_continues_exactly(tmp_path, monkeypatch):
    # DARTS with drop-path and the auxiliary head: every random draw of the recipe is exercised
    model = save_model(tmp_path / "d.pt", "DARTS_V2", default_builder("darts", 8, 5, drop_path_prob=0.3))
    config = TrainConfig(epochs=3, **{**TINY, "train_images": 64, "val_images": 32})
    full = train_model(model, None, config, output=tmp_path / "full.pt")

    real_epoch, calls = training.train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the machine went away during epoch 2
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model(model, None, config, output=tmp_path / "resumed.pt")
    monkeypatch.setattr(training, "train_epoch", real_epoch)
    assert not (tmp_path / "resumed.pt").exists()
    resumed = train_model(model, None, config, output=tmp_path / "resumed.pt", resume=True)
    pd.testing.assert_frame_equal(resumed.log.drop(columns="seconds"), full.log.drop(columns="seconds"))
    a, b = load_model(tmp_path / "full.pt"), load_model(tmp_path / "resumed.pt")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_resume_refuses_other_settings_and_missing_checkpoint(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        train_model(tiny_model, None, TrainConfig(epochs=1, **TINY), resume=True)
    train_model(tiny_model, None, TrainConfig(epochs=1, **TINY), output=tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="lr="):
        train_model(tiny_model, None, TrainConfig(epochs=1, lr=0.1, **TINY), output=tmp_path / "a.pt", resume=True)


def test_config_and_data_errors(tiny_model):
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(val_source="somewhere")
    with pytest.raises(ConfigError, match="train_images"):
        train_model(tiny_model, None, TrainConfig(epochs=1, batch_size=32, train_images=5000, device="cpu"))


def test_cli_train_writes_model_log_and_checkpoint(tiny_model, tmp_path):
    from click.testing import CliRunner

    from fne.cli import cli

    out = tmp_path / "out.pt"
    args = ["train", str(tiny_model), "--epochs", "1", "--train-images", "64", "--val-images", "32",
            "--batch-size", "32", "--device", "cpu", "--no-progress", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "epoch   1" in result.output
    assert out.is_file() and (tmp_path / "out.train.csv").is_file() and (tmp_path / "out.ckpt.pt").is_file()
    assert read_model_file(out).training["config"]["train_images"] == 64
