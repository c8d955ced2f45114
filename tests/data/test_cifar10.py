"""CIFAR-10 loading, sample, subsets, splits, tensors, batches and download, against raw bytes and counts."""

from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fne.data.cifar10 import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    SAMPLE_PATH,
    TEST_FILES,
    TRAIN_FILES,
    CifarArrays,
    download_cifar10,
    extract_tar_safely,
    file_md5,
    find_cifar10_dir,
    heuristic_batch,
    iterate_batches,
    load_cifar10,
    save_arrays,
    subset,
    to_tensor,
    train_val_split,
    verify_md5,
)
from fne.errors import ConfigError, DataError
from tests.shared_data import CIFAR10_BATCHES, SHARED_DATA, require

SHARED = SHARED_DATA
SHARED_BATCHES = CIFAR10_BATCHES
needs_shared = pytest.mark.usefixtures("shared_batches")
TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]  # first 1,000 official test labels
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture
def shared_batches() -> Path:
    """The shared CIFAR-10 folder, or a skip naming it (a failure in CI: tests/shared_data.py)."""
    return require(SHARED_BATCHES)


@pytest.fixture(scope="module")
def train() -> CifarArrays:
    require(SHARED_BATCHES)
    return load_cifar10(SHARED, "train")


@pytest.fixture(scope="module")
def test_split() -> CifarArrays:
    return load_cifar10(require(SHARED_BATCHES), "test")


@pytest.fixture(scope="module")
def sample() -> CifarArrays:
    return load_cifar10(None)


def raw_rows(path: Path, n: int) -> bytes:
    """The N x 3072 pixel bytes of an official-layout batch, located without unpickling.

    The file ends with BINSTRING 'T' <int32 length> <data>, then TUPLE, BUILD, SETITEMS, STOP (4 bytes).
    """
    raw = path.read_bytes()
    start = len(raw) - 4 - n * 3072
    assert raw[start - 5:start] == b"T" + struct.pack("<i", n * 3072)
    assert raw[-4:] == b"tbu."
    return raw[start:start + n * 3072]


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray, bytes_keys: bool) -> None:
    """An official-layout batch: rows of R, G, B planes; bytes keys like Python 2 files, or str keys."""
    rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
    content = {"batch_label": "tiny", "labels": [int(v) for v in labels], "data": rows}
    if bytes_keys:
        content = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in content.items()}
    path.write_bytes(pickle.dumps(content, protocol=2))


def write_folder(folder: Path, sample: CifarArrays, per_batch: int = 4, bytes_keys: bool = True) -> Path:
    """A complete tiny cifar-10-batches-py folder made of real sample images."""
    folder.mkdir(parents=True)
    for i, name in enumerate((*TRAIN_FILES, *TEST_FILES)):
        part = slice(i * per_batch, (i + 1) * per_batch)
        write_batch(folder / name, sample.images[part], sample.labels[part], bytes_keys)
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


# ---------------------------------------------------------------- the shared real data
def test_shared_train_shapes_and_counts(train):
    assert train.images.shape == (50_000, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.classes == CLASSES
    assert train.class_counts().tolist() == [5000] * 10
    np.testing.assert_array_equal(train.indices, np.arange(50_000))


def test_shared_test_shapes_and_counts(test_split):
    assert test_split.images.shape == (1000, 32, 32, 3)
    assert test_split.class_counts().tolist() == TEST_COUNTS


@needs_shared
def test_folder_or_parent_give_the_same_data(test_split):
    assert find_cifar10_dir(SHARED) == find_cifar10_dir(SHARED_BATCHES) == SHARED_BATCHES
    np.testing.assert_array_equal(load_cifar10(SHARED, "test").images, test_split.images)


@needs_shared
def test_pixels_equal_raw_pickle_bytes(train, test_split):
    rows = raw_rows(SHARED_BATCHES / "data_batch_3", 10_000)
    i = 9123  # row 9123 of data_batch_3 = training index 29,123
    for r, c, ch in [(0, 0, 0), (5, 17, 1), (31, 31, 2), (16, 3, 0)]:
        assert train.images[20_000 + i, r, c, ch] == rows[i * 3072 + ch * 1024 + r * 32 + c]
    test_rows = raw_rows(SHARED_BATCHES / "test_batch", 1000)
    image = np.frombuffer(test_rows, np.uint8, 3072, 999 * 3072)
    for ch in range(3):
        np.testing.assert_array_equal(test_split.images[999, :, :, ch].ravel(), image[ch * 1024:(ch + 1) * 1024])


@needs_shared
def test_labels_equal_pickle_opcodes(test_split, train):
    raw = (SHARED_BATCHES / "test_batch").read_bytes()
    labels = []
    for op, arg, _ in pickletools.genops(raw):  # header: batch_label, then the labels list up to APPENDS
        if op.name == "APPENDS":
            break
        if op.name == "BININT1":
            labels.append(arg)
    assert labels == test_split.labels.tolist()
    # Known official labels: test image 0 is a cat, training images 0 and 1 a frog and a truck.
    assert test_split.labels[0] == 3 and train.labels[:2].tolist() == [6, 9]


# ---------------------------------------------------------------- the packaged sample
def test_sample_is_balanced_and_well_formed(sample):
    assert SAMPLE_PATH.is_file() and sample.images.shape == (1000, 32, 32, 3)
    assert sample.class_counts().tolist() == [100] * 10 and sample.classes == CLASSES
    assert np.all(np.diff(sample.indices) > 0) and 0 <= sample.indices.min() and sample.indices.max() < 50_000


def test_sample_matches_provenance_digests(sample):
    text = (SAMPLE_PATH.parent / "PROVENANCE.md").read_text()
    for key in ("images", "labels", "indices"):
        digest = re.search(rf"`{key}`: ([0-9a-f]{{64}})", text).group(1)
        assert hashlib.sha256(np.ascontiguousarray(getattr(sample, key)).tobytes()).hexdigest() == digest


def test_sample_equals_shared_images_at_recorded_indices(sample, train):
    np.testing.assert_array_equal(sample.images, train.images[sample.indices])
    np.testing.assert_array_equal(sample.labels, train.labels[sample.indices])
    # The generating rule (experiments/make_cifar10_sample.py) reproduces the recorded indices.
    np.testing.assert_array_equal(subset(train, 1000, 0).indices, sample.indices)


def test_sample_has_no_test_split():
    with pytest.raises(DataError, match="split='test'"):
        load_cifar10(None, "test")


# ---------------------------------------------------------------- subsets and splits
def test_subset_is_seeded_balanced_and_keeps_source_indices(sample):
    a, b, c = subset(sample, 25, 7), subset(sample, 25, 7), subset(sample, 25, 8)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    assert sorted(set(a.class_counts().tolist())) == [2, 3] and len(a) == 25
    np.testing.assert_array_equal(a.images, sample.images[np.searchsorted(sample.indices, a.indices)])


def test_subset_by_class_names_and_relabel(sample):
    picked = subset(sample, 30, np.random.default_rng(1), classes=["ship", "cat", 0])
    assert picked.class_counts()[[8, 3, 0]].tolist() == [10, 10, 10] and picked.class_counts().sum() == 30
    relabelled = subset(sample, 30, np.random.default_rng(1), classes=["ship", "cat", 0], relabel=True)
    assert relabelled.classes == ("ship", "cat", "airplane")
    np.testing.assert_array_equal(relabelled.indices, picked.indices)
    np.testing.assert_array_equal(np.array([8, 3, 0])[relabelled.labels], picked.labels)


def test_unbalanced_subset_and_errors(sample, test_split):
    assert len(subset(sample, 13, 0, balanced=False)) == 13
    with pytest.raises(ConfigError, match="n=1001"):
        subset(sample, 1001, 0)
    with pytest.raises(ConfigError, match="unknown class 'zebra'"):
        subset(sample, 10, 0, classes=["zebra"])
    with pytest.raises(ConfigError, match="class 'automobile', which has only 89"):
        subset(test_split, 1000, 0)


def test_train_val_split_is_stratified_disjoint_and_seeded(sample):
    tr, va = train_val_split(sample, 0.5, 3)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 1000
    assert np.bincount(sample.labels[va], minlength=10).tolist() == [50] * 10
    tr2, va2 = train_val_split(sample.labels, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(va, va2)
    _, few = train_val_split(sample, 7, 3)
    assert len(few) == 7 and np.bincount(sample.labels[few], minlength=10).max() == 1
    with pytest.raises(ConfigError, match="val_size"):
        train_val_split(sample, 1.0, 0)


def test_train_val_split_on_unequal_classes(test_split):
    _, va = train_val_split(test_split, 0.1, 0)
    assert len(va) == 100
    # Largest remainder: each class gets floor or ceil of 10% of its count.
    got = np.bincount(test_split.labels[va], minlength=10)
    assert np.all(np.abs(got - np.array(TEST_COUNTS) / 10) < 1)


# ---------------------------------------------------------------- tensors and batches
def test_to_tensor_matches_hand_normalisation(sample):
    x, y = to_tensor(sample, "cpu")
    assert x.shape == (1000, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    for n, ch, r, c in [(0, 0, 0, 0), (517, 2, 31, 5), (999, 1, 12, 30)]:
        expected = (sample.images[n, r, c, ch] / 255.0 - CIFAR10_MEAN[ch]) / CIFAR10_STD[ch]
        assert abs(float(x[n, ch, r, c]) - expected) < 1e-5
    assert torch.all(x.mean((0, 2, 3)).abs() < 0.05) and torch.all((x.std((0, 2, 3)) - 1).abs() < 0.05)
    np.testing.assert_array_equal(y.numpy(), sample.labels)


def test_normalisation_constants_are_the_training_set_statistics(train):
    for ch in range(3):
        hist = np.bincount(train.images[..., ch].ravel(), minlength=256).astype(np.float64)
        values = np.arange(256) / 255.0
        mean = (hist * values).sum() / hist.sum()
        std = np.sqrt((hist * (values - mean) ** 2).sum() / hist.sum())
        assert abs(mean - CIFAR10_MEAN[ch]) < 1e-3 and abs(std - CIFAR10_STD[ch]) < 1e-3


def test_iterate_batches_covers_every_image_once(sample):
    small = sample.take(np.arange(50))
    batches = list(iterate_batches(small, 16, 0))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x_all, y_all = to_tensor(small)
    seen = torch.cat([x for x, _ in batches])
    order = np.random.default_rng(0).permutation(50)
    torch.testing.assert_close(seen, x_all[order])
    assert [len(y) for _, y in iterate_batches(small, 16, 0, drop_last=True)] == [16, 16, 16]
    rng = np.random.default_rng(5)
    first, second = (torch.cat([y for _, y in iterate_batches(small, 50, rng)]) for _ in range(2))
    assert not torch.equal(first, second)  # one Generator, two epochs, two orders
    torch.testing.assert_close(torch.cat([y for _, y in iterate_batches(small, 7, shuffle=False)]), y_all)
    with pytest.raises(ConfigError, match="seed"):
        next(iterate_batches(small, 8))


def test_heuristic_batch_is_the_balanced_seeded_subset(sample):
    x = heuristic_batch(None, 20, 4, "cpu")
    torch.testing.assert_close(x, to_tensor(subset(sample, 20, 4))[0])
    assert x.shape == (20, 3, 32, 32)


# ---------------------------------------------------------------- formats and bad input
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_both_key_styles_load(tmp_path, sample, bytes_keys):
    folder = write_folder(tmp_path / "cifar-10-batches-py", sample, bytes_keys=bytes_keys)
    loaded = load_cifar10(tmp_path, "train")
    np.testing.assert_array_equal(loaded.images, sample.images[:20])
    np.testing.assert_array_equal(loaded.labels, sample.labels[:20])
    assert loaded.classes == CLASSES and len(load_cifar10(folder, "test")) == 4


def test_npz_round_trip(tmp_path, sample):
    part = subset(sample, 10, 0)
    loaded = load_cifar10(save_arrays(part, tmp_path / "part.npz"))
    np.testing.assert_array_equal(loaded.images, part.images)
    np.testing.assert_array_equal(loaded.indices, part.indices)
    np.savez(tmp_path / "bad.npz", images=part.images)
    with pytest.raises(DataError, match="missing keys"):
        load_cifar10(tmp_path / "bad.npz")


def test_missing_folder_names_the_expected_layout(tmp_path):
    with pytest.raises(DataError, match=r"no CIFAR-10 data at .*data_batch_1.*batches\.meta"):
        load_cifar10(tmp_path / "nowhere")


def test_missing_batch_file(tmp_path, sample):
    folder = write_folder(tmp_path / "cifar-10-batches-py", sample)
    (folder / "data_batch_4").unlink()
    with pytest.raises(DataError, match="missing CIFAR-10 file .*data_batch_4"):
        load_cifar10(folder)


@needs_shared
def test_truncated_pickle(tmp_path, sample):
    folder = write_folder(tmp_path / "cifar-10-batches-py", sample)
    (folder / "test_batch").write_bytes((SHARED_BATCHES / "test_batch").read_bytes()[:100_000])
    with pytest.raises(DataError, match="corrupt CIFAR-10 file .*test_batch"):
        load_cifar10(folder, "test")


def test_wrong_shape_and_missing_keys(tmp_path, sample):
    folder = write_folder(tmp_path / "cifar-10-batches-py", sample)
    bad = {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0, 1, 2, 3]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"shape \(N, 3072\).*\(4, 3000\)"):
        load_cifar10(folder, "test")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((4, 3072), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match="expected keys 'data' and 'labels'"):
        load_cifar10(folder, "test")
    with pytest.raises(DataError, match=r"\(N, 32, 32, 3\)"):
        CifarArrays(np.zeros((2, 32, 32), np.uint8), np.zeros(2), CLASSES, np.arange(2))


def test_pickle_with_foreign_global_is_refused(tmp_path, sample):
    folder = write_folder(tmp_path / "cifar-10-batches-py", sample)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (folder / "test_batch").write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(DataError, match="not allowed"):
        load_cifar10(folder, "test")
    assert not marker.exists()


def test_bad_split_name(sample):
    with pytest.raises(ConfigError, match="split='val'"):
        load_cifar10(None, "val")


# ---------------------------------------------------------------- download, md5, extraction (no network)
def make_archive(path: Path, folder: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


def test_file_md5_known_digests(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert file_md5(tmp_path / "abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert file_md5(tmp_path / "empty") == "d41d8cd98f00b204e9800998ecf8427e"


def test_download_from_local_archive(tmp_path, sample):
    archive = make_archive(tmp_path / "official.tar.gz", write_folder(tmp_path / "src", sample))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    folder = download_cifar10(tmp_path / "root", url=archive.as_uri(), md5=md5, progress=False)
    np.testing.assert_array_equal(load_cifar10(folder).images, sample.images[:20])
    assert download_cifar10(tmp_path / "root", url="file:///nonexistent", md5=md5) == folder  # cached


def test_download_rejects_wrong_md5_and_bad_url(tmp_path, sample):
    archive = make_archive(tmp_path / "official.tar.gz", write_folder(tmp_path / "src", sample))
    with pytest.raises(DataError, match="expected 0{32}"):
        download_cifar10(tmp_path / "root", url=archive.as_uri(), md5="0" * 32, progress=False)
    assert not (tmp_path / "root" / "cifar-10-batches-py").exists()
    with pytest.raises(DataError, match="could not download"):
        download_cifar10(tmp_path / "other", url=(tmp_path / "absent.tar.gz").as_uri(), progress=False)
    with pytest.raises(DataError, match="missing archive"):
        verify_md5(tmp_path / "absent.tar.gz", "0" * 32)


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_extraction_refuses_unsafe_members(tmp_path, kind):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo({"parent": "../escaped", "absolute": "/tmp/escaped"}.get(kind, "link"))
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(DataError, match="unsafe member"):
        extract_tar_safely(archive, dest)
    assert not (tmp_path / "escaped").exists() and list(dest.iterdir()) == []
