"""open_dataset: every format opens with the right classes, sizes and splits; spec parsing and detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fne.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, SAMPLE_PATH
from fne.data.dataset import DATASET_FORMATS, OpenOptions, register_format
from fne.data.datasets import detect_format, open_dataset, parse_spec
from fne.data.formats.cifar100 import write_cifar100
from fne.errors import ConfigError
from tests.data.dataset_fixtures import sample_arrays, synthetic, write_cifar10, write_folder
from tests.shared_data import CIFAR10_BATCHES, require

SHARED_BATCHES = CIFAR10_BATCHES


def test_sample_is_the_default_and_keeps_cifar10_constants():
    dataset = open_dataset()
    assert (dataset.format, dataset.num_classes, dataset.image_size, dataset.channels) == ("sample", 10, (32, 32), 3)
    assert (dataset.train_size, dataset.val_size) == (1000, 0)
    assert dataset.stats == (CIFAR10_MEAN, CIFAR10_STD)
    described = dataset.describe()
    assert described["classes"][0] == "airplane" and described["digest"] == dataset.digest
    assert open_dataset("sample").digest == open_dataset(f"npz:{SAMPLE_PATH}").digest


def test_shared_cifar10_folder_opens_with_its_test_batch_held_out():
    dataset = open_dataset(require(SHARED_BATCHES))
    assert dataset.format == "cifar10" and (dataset.train_size, dataset.val_size) == (50000, 1000)
    assert np.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert dataset.read([0])[0].shape == (32, 32, 3)


def test_tiny_cifar10_folder_reads_its_batches(tmp_path):
    folder = write_cifar10(tmp_path / "cifar-10-batches-py")
    images, labels, classes = sample_arrays()
    dataset = open_dataset(tmp_path)  # the parent of cifar-10-batches-py is found too
    assert dataset.format == "cifar10" and dataset.classes == classes
    assert (dataset.train_size, dataset.val_size) == (50, 10)
    np.testing.assert_array_equal(dataset.read(np.arange(50)), images[:50])
    np.testing.assert_array_equal(dataset.val_labels, labels[50:60])
    assert detect_format(folder) == "cifar10"


def test_cifar100_fixture_has_100_fine_classes(tmp_path):
    rng = np.random.default_rng(1)
    train = (rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8), np.arange(200) % 100)
    test = (rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8), np.arange(100)[::-1] % 100)
    names = [f"class{i:03d}" for i in range(100)]
    write_cifar100(tmp_path / "cifar-100-python", train, test, names)
    dataset = open_dataset(tmp_path, OpenOptions(cache_dir=str(tmp_path / "cache")))
    assert dataset.format == "cifar100" and dataset.classes == tuple(names)
    assert (dataset.train_size, dataset.val_size, dataset.image_size) == (200, 100, (32, 32))
    np.testing.assert_array_equal(dataset.read([5, 7]), train[0][[5, 7]])
    np.testing.assert_array_equal(dataset.val_labels, test[1])


def test_npz_with_x_y_and_class_names_is_split_by_the_seed(tmp_path):
    images, labels = synthetic(60, (8, 12), 3, 3)
    path = tmp_path / "data.npz"
    np.savez(path, x=images, y=labels, class_names=np.array(["a", "b", "c"]))
    dataset = open_dataset(path, OpenOptions(val_fraction=0.2, seed=4))
    assert dataset.format == "npz" and dataset.classes == ("a", "b", "c")
    assert (dataset.train_size, dataset.val_size, dataset.image_size) == (48, 12, (8, 12))
    assert np.bincount(dataset.val_labels).tolist() == [4, 4, 4]  # stratified
    assert dataset.fixed_stats is None
    other = open_dataset(path, OpenOptions(val_fraction=0.2, seed=5))
    assert not np.array_equal(dataset.read(np.arange(48)), other.read(np.arange(48)))
    assert open_dataset(path, OpenOptions(val_fraction=0.0)).train_size == 60


def test_npz_without_class_names_numbers_them_and_grayscale_is_one_channel(tmp_path):
    images, labels = synthetic(30, (6, 6), 1, 3)
    np.savez(tmp_path / "gray.npz", images=images, labels=labels)
    dataset = open_dataset(tmp_path / "gray.npz")
    assert dataset.classes == ("0", "1", "2") and dataset.channels == 1


def test_image_folder_classes_sizes_and_seeded_split(tmp_path):
    images, labels = synthetic(30, (10, 14), 3, 3)
    write_folder(tmp_path / "pics", images, labels, ("cat", "dog", "eel"))
    dataset = open_dataset(tmp_path / "pics", OpenOptions(val_fraction=0.2, cache_dir=str(tmp_path / "cache")))
    assert dataset.format == "imagefolder" and dataset.classes == ("cat", "dog", "eel")
    assert (dataset.train_size, dataset.val_size, dataset.image_size, dataset.channels) == (24, 6, (10, 14), 3)
    assert np.bincount(dataset.val_labels).tolist() == [2, 2, 2]


def test_image_folder_with_train_and_val_folders_uses_them(tmp_path):
    images, labels = synthetic(24, (8, 8), 1, 2)
    write_folder(tmp_path / "d" / "train", images[:18], labels[:18], ("no", "yes"))
    write_folder(tmp_path / "d" / "val", images[18:], labels[18:], ("no", "yes"))
    dataset = open_dataset(tmp_path / "d", OpenOptions(cache_dir=str(tmp_path / "cache")))
    assert (dataset.train_size, dataset.val_size, dataset.channels) == (18, 6, 1)
    np.testing.assert_array_equal(dataset.read([0], "val")[0][..., 0], images[18])


def test_parse_spec_forms():
    assert parse_spec(None) == ("sample", None) and parse_spec("sample") == ("sample", None)
    assert parse_spec("npz:/x/y.npz") == ("npz", Path("/x/y.npz"))
    assert parse_spec("/x/folder") == (None, Path("/x/folder"))


def test_duplicate_format_is_refused():
    with pytest.raises(ConfigError, match="already registered"):
        register_format("npz")(lambda path, options: None)
    assert {"cifar10", "cifar100", "npz", "sample", "imagefolder"} <= set(DATASET_FORMATS)


def test_open_options_are_checked():
    with pytest.raises(ConfigError, match="val_fraction"):
        OpenOptions(val_fraction=1.0)
    with pytest.raises(ConfigError, match="image_size"):
        OpenOptions(image_size=0)
