"""Bad input: one-line DataErrors that name the path and what was expected; the folder index's cache."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from fne.data.batches import probe_batch
from fne.data.dataset import OpenOptions
from fne.data.datasets import open_dataset
from fne.data.formats import folder_index
from fne.errors import DataError
from tests.data.dataset_fixtures import synthetic, write_cifar10, write_folder


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.fixture
def options(tmp_path) -> OpenOptions:
    return OpenOptions(val_fraction=0.0, cache_dir=str(tmp_path / "cache"))


def test_empty_class_folder(tmp_path, options):
    images, labels = synthetic(4, (4, 4), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    (tmp_path / "f" / "c").mkdir()
    with pytest.raises(DataError) as error:
        open_dataset(tmp_path / "f", options)
    assert str(tmp_path / "f" / "c") in _one_line(error) and "holds no images" in str(error.value)


def test_a_file_that_is_not_an_image_is_named(tmp_path, options):
    images, labels = synthetic(4, (4, 4), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    (tmp_path / "f" / "a" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt is not an image") as error:
        open_dataset(tmp_path / "f", options)
    _one_line(error)
    (tmp_path / "f" / "a" / "notes.txt").unlink()
    (tmp_path / "f" / "a" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png is not a readable image") as error:
        open_dataset(tmp_path / "f", options)
    _one_line(error)


def test_a_single_class(tmp_path, options):
    images, labels = synthetic(4, (4, 4), 3, 1)
    write_folder(tmp_path / "f", images, labels, ("only",))
    with pytest.raises(DataError, match="expected at least 2 classes") as error:
        open_dataset(tmp_path / "f", options)
    assert str(tmp_path / "f") in _one_line(error)


def test_labels_out_of_range(tmp_path, options):
    images, labels = synthetic(6, (4, 4), 3, 2)
    labels[2] = 5
    np.savez(tmp_path / "d.npz", images=images, labels=labels, class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"labels span 0\.\.5; expected 0\.\.1") as error:
        open_dataset(tmp_path / "d.npz", options)
    assert "d.npz" in _one_line(error)
    labels[2] = -1
    np.savez(tmp_path / "n.npz", images=images, labels=labels)
    with pytest.raises(DataError, match="expected labels from 0"):
        open_dataset(tmp_path / "n.npz", options)


def test_fewer_images_than_one_probe_batch(tmp_path, options):
    images, labels = synthetic(20, (4, 4), 3, 2)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    with pytest.raises(DataError, match="20 training images, fewer than one probe batch of 64") as error:
        probe_batch(open_dataset(tmp_path / "d.npz", options), 64, 0)
    _one_line(error)
    labels[:] = 0
    labels[-1] = 1  # class "1" has one image; a balanced batch of 8 needs 4
    np.savez(tmp_path / "skewed.npz", images=images, labels=labels)
    with pytest.raises(DataError, match="class '1' has 1 training images"):
        probe_batch(open_dataset(tmp_path / "skewed.npz", options), 8, 0)


def test_cifar_folder_with_a_missing_batch(tmp_path, options):
    write_cifar10(tmp_path / "cifar", batches=(1, 2, 3, 4))
    with pytest.raises(DataError, match="missing CIFAR-10 file .*data_batch_5") as error:
        open_dataset(tmp_path / "cifar", options)
    _one_line(error)


def test_unknown_format_and_missing_path(tmp_path, options):
    (tmp_path / "loose.txt").write_text("x")
    with pytest.raises(DataError, match="unknown dataset format at") as error:
        open_dataset(tmp_path / "loose.txt", options)
    _one_line(error)
    with pytest.raises(DataError, match="unknown dataset format 'tfrecord'"):
        open_dataset("tfrecord:/data/x", options)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "absent", options)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(f"npz:{tmp_path / 'absent.npz'}", options)


def test_folder_index_is_cached_and_rebuilt_when_a_file_changes(tmp_path, options, monkeypatch):
    images, labels = synthetic(10, (6, 6), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    reads = []
    real = folder_index.read_header
    monkeypatch.setattr(folder_index, "read_header", lambda path: reads.append(path) or real(path))
    first = open_dataset(tmp_path / "f", options)
    assert len(reads) == 10
    second = open_dataset(tmp_path / "f", options)
    assert len(reads) == 10 and second.digest == first.digest  # no file read the second time
    np.testing.assert_array_equal(second.train_labels, first.train_labels)
    changed = tmp_path / "f" / "a" / "00000.png"
    write_folder(tmp_path / "g", images[1:2], labels[:1], ("a", "b"))
    os.replace(tmp_path / "g" / "a" / "00000.png", changed)
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a distinct mtime on coarse clocks
    third = open_dataset(tmp_path / "f", options)
    assert len(reads) == 20 and third.digest != first.digest
    np.testing.assert_array_equal(third.read([0])[0], images[1])


def test_the_digest_does_not_depend_on_where_the_folder_lies(tmp_path, options):
    images, labels = synthetic(6, (4, 4), 3, 2)
    write_folder(tmp_path / "one", images, labels, ("a", "b"))
    write_folder(tmp_path / "two", images, labels, ("a", "b"))
    assert open_dataset(tmp_path / "one", options).digest == open_dataset(tmp_path / "two", options).digest


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR chunk (8-bit RGB) claiming width x height pixels, then IEND: no pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_by_name_with_the_limit(tmp_path, options, monkeypatch):
    images, labels = synthetic(4, (4, 4), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    bomb = tmp_path / "f" / "a" / "bomb.png"
    bomb.write_bytes(_png_header_only(40_000, 40_000))  # 1.6e9 pixels in 45 bytes
    monkeypatch.delenv(folder_index.PIXEL_LIMIT_ENV, raising=False)
    with pytest.raises(DataError) as error:
        open_dataset(tmp_path / "f", options)
    message = _one_line(error)
    assert str(bomb) in message and "89,478,485" in message and folder_index.PIXEL_LIMIT_ENV in message
    # Between PIL's limit and twice it PIL only warns; fne refuses there too, naming the size it read.
    bomb.write_bytes(_png_header_only(10_000, 10_000))
    with pytest.raises(DataError, match="10000 x 10000 = 100,000,000 pixels beyond the limit of 89,478,485"):
        open_dataset(tmp_path / "f", options)
    monkeypatch.setenv(folder_index.PIXEL_LIMIT_ENV, "1_000")
    bomb.write_bytes(_png_header_only(40, 40))
    with pytest.raises(DataError, match="40 x 40 = 1,600 pixels beyond the limit of 1,000"):
        open_dataset(tmp_path / "f", options)
    monkeypatch.setenv(folder_index.PIXEL_LIMIT_ENV, "lots")
    with pytest.raises(DataError, match="FNE_MAX_IMAGE_PIXELS='lots'"):
        open_dataset(tmp_path / "f", options)


def test_a_large_image_is_admitted_when_the_limit_is_raised(tmp_path, options, monkeypatch):
    images, labels = synthetic(4, (4, 4), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    monkeypatch.setenv(folder_index.PIXEL_LIMIT_ENV, "15")  # the 4 x 4 images claim 16 pixels
    with pytest.raises(DataError, match="4 x 4 = 16 pixels beyond the limit of 15"):
        open_dataset(tmp_path / "f", options)
    for limit in ("16", "0"):  # 0: no limit
        monkeypatch.setenv(folder_index.PIXEL_LIMIT_ENV, limit)
        dataset = open_dataset(tmp_path / "f", options)
        assert dataset.train_size == 4 and dataset.read(np.arange(4))[0].shape == (4, 4, 3)


def test_a_dangling_symlink_in_a_class_folder_is_called_what_it_is(tmp_path, options):
    images, labels = synthetic(4, (4, 4), 3, 2)
    write_folder(tmp_path / "f", images, labels, ("a", "b"))
    link = tmp_path / "f" / "b" / "gone.png"
    os.symlink(tmp_path / "elsewhere" / "gone.png", link)
    with pytest.raises(DataError) as error:
        open_dataset(tmp_path / "f", options)
    message = _one_line(error)
    assert str(link) in message and "broken symbolic link" in message and "folder" not in message
    assert str(tmp_path / "elsewhere" / "gone.png") in message
    link.unlink()
    (tmp_path / "f" / "b" / "sub").mkdir()  # a real folder keeps its own message
    with pytest.raises(DataError, match="sub is a folder inside a class folder"):
        open_dataset(tmp_path / "f", options)
