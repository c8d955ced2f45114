"""probe_batch and to_tensors: bit-identical to fne's CIFAR-10 batches, equal across formats, statistics, resizing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fne.data.batches import probe_batch, to_tensors
from fne.data.cifar10 import heuristic_labelled_batch, load_cifar10, subset, to_tensor
from fne.data.dataset import OpenOptions, measure_stats
from fne.data.datasets import open_dataset
from tests.data.dataset_fixtures import class_major, sample_arrays, synthetic, write_folder
from tests.shared_data import CIFAR10_BATCHES, require

SHARED_BATCHES = CIFAR10_BATCHES


@pytest.mark.parametrize("n, seed", [(64, 0), (37, 5)])
def test_sample_probe_is_todays_heuristic_batch_bit_for_bit(n, seed):
    x, y = probe_batch(open_dataset(), n, seed)
    x0, y0 = heuristic_labelled_batch(None, n, seed)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_cifar10_folder_probe_is_todays_heuristic_batch_bit_for_bit():
    x, y = probe_batch(open_dataset(require(SHARED_BATCHES)), 64, 3)
    x0, y0 = to_tensor(subset(load_cifar10(SHARED_BATCHES, "train"), 64, 3))
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_image_folder_of_the_sample_gives_the_npz_probe_exactly(tmp_path):
    images, labels, classes = sample_arrays()
    ordered_images, ordered_labels = class_major(images, labels)
    write_folder(tmp_path / "folder", images, labels, classes)
    np.savez(tmp_path / "same.npz", images=ordered_images, labels=ordered_labels, class_names=np.array(classes))
    options = OpenOptions(cache_dir=str(tmp_path / "cache"))
    folder, arrays = open_dataset(tmp_path / "folder", options), open_dataset(tmp_path / "same.npz", options)
    assert folder.val_size == arrays.val_size == 100
    x, y = probe_batch(folder, 64, 2)
    x_npz, y_npz = probe_batch(arrays, 64, 2)
    assert torch.equal(x, x_npz) and torch.equal(y, y_npz)
    # Without a held-out split the folder draws today's sample batch: the same images, in class-major order.
    whole = open_dataset(tmp_path / "folder", OpenOptions(val_fraction=0.0, cache_dir=str(tmp_path / "cache")))
    x_all, y_all = probe_batch(whole, 64, 0)
    x0, y0 = heuristic_labelled_batch(None, 64, 0)
    order = torch.argsort(y0, stable=True)
    assert torch.equal(x_all, x0[order]) and torch.equal(y_all, y0[order])


def _oracle(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return flat.mean(axis=0), flat.std(axis=0)


def test_statistics_match_numpy_over_all_training_images(tmp_path):
    images, labels = synthetic(40, (6, 10), 3, 4, seed=3)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    dataset = open_dataset(tmp_path / "d.npz", OpenOptions(val_fraction=0.0, cache_dir=str(tmp_path / "c")))
    mean, std = _oracle(images)
    np.testing.assert_allclose(dataset.stats[0], mean, rtol=1e-12)
    np.testing.assert_allclose(dataset.stats[1], std, rtol=1e-9)


def test_statistics_of_a_seeded_sample_and_their_cache(tmp_path):
    images, labels = synthetic(50, (5, 5), 1, 2, seed=7)
    np.savez(tmp_path / "g.npz", images=images, labels=labels)
    options = OpenOptions(val_fraction=0.0, stats_images=12, seed=9, cache_dir=str(tmp_path / "c"))
    dataset = open_dataset(tmp_path / "g.npz", options)
    chosen = np.sort(np.random.default_rng(9).choice(50, 12, replace=False))
    mean, std = _oracle(images[chosen][..., None])
    np.testing.assert_allclose(measure_stats(dataset, 12, 9), (mean, std), rtol=1e-9)
    assert np.allclose(dataset.stats, (mean, std))
    assert list((tmp_path / "c" / "datasets").glob("stats-*.json"))
    reopened = open_dataset(tmp_path / "g.npz", options)
    assert reopened.stats == dataset.stats


def test_grayscale_becomes_three_equal_standardised_channels(tmp_path, caplog):
    images, labels = synthetic(20, (8, 8), 1, 2)
    np.savez(tmp_path / "g.npz", images=images, labels=labels)
    dataset = open_dataset(tmp_path / "g.npz", OpenOptions(val_fraction=0.0, cache_dir=str(tmp_path / "c")))
    with caplog.at_level(logging.INFO, logger="fne.data.batches"):
        x, y = to_tensors(dataset, [0, 3])
    assert x.shape == (2, 3, 8, 8) and torch.equal(x[:, 0], x[:, 2])
    (mean,), (std,) = dataset.stats
    expected = (images[[0, 3]].astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)
    np.testing.assert_allclose(x[:, 1].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert y.tolist() == [0, 1] and "3 channels" in caplog.text


def test_resize_to_half_is_the_mean_of_2x2_blocks(tmp_path):
    images, labels = synthetic(12, (16, 16), 3, 2)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    dataset = open_dataset(tmp_path / "d.npz", OpenOptions(image_size=8, val_fraction=0.0,
                                                           cache_dir=str(tmp_path / "c")))
    x, _ = to_tensors(dataset, [1])
    mean, std = (np.array(s, dtype=np.float32) for s in dataset.stats)
    blocks = (images[1].astype(np.float32) / 255).reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), (blocks - mean) / std, rtol=1e-5, atol=1e-5)


def test_non_square_images_keep_their_shape_unless_a_size_is_asked(tmp_path, caplog):
    images, labels = synthetic(12, (12, 20), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    cache = str(tmp_path / "c")
    x, _ = probe_batch(open_dataset(tmp_path / "f", OpenOptions(val_fraction=0.0, cache_dir=cache)), 4, 0)
    assert x.shape == (4, 3, 12, 20)
    with caplog.at_level(logging.INFO, logger="fne.data.batches"):
        x, _ = probe_batch(open_dataset(tmp_path / "f", OpenOptions(16, val_fraction=0.0, cache_dir=cache)), 4, 0)
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all() and "aspect ratio" in caplog.text


def test_images_of_several_sizes_are_resized_to_the_common_one(tmp_path):
    small, labels = synthetic(6, (8, 8), 3, 2)
    large, _ = synthetic(4, (16, 16), 3, 2, seed=1)
    write_folder(tmp_path / "f", small, labels, ("a", "b"))
    for i, image in enumerate(large):
        write_folder(tmp_path / "big", image[None], np.array([i % 2]), ("a", "b"))
        (tmp_path / "big" / "ab"[i % 2] / "00000.png").rename(tmp_path / "f" / "ab"[i % 2] / f"big{i}.png")
    dataset = open_dataset(tmp_path / "f", OpenOptions(val_fraction=0.0, cache_dir=str(tmp_path / "c")))
    assert dataset.image_size == (8, 8)
    x, _ = to_tensors(dataset, np.arange(10))
    assert x.shape == (10, 3, 8, 8) and torch.isfinite(x).all()
