"""Issue 19: every stage runs on the user's own data (`--data`), and a run records and guards it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import fne
from fne.commands.export import export
from fne.commands.search import search
from fne.commands.train import train
from fne.errors import CheckpointError
from fne.run.search import SearchConfig, run_search
from tests.data.dataset_fixtures import class_major, sample_arrays, write_folder
from tests.test_hardening import assert_one_error_line, invoke

TINY = ["--space", "nb201", "--population", "4", "--offspring", "4", "--generations", "1", "--tournament-every",
        "0", "--batch-size", "6", "--device", "cpu", "--no-progress", "--finalists", "0"]
TINY_CONFIG = dict(space="nb201", population=4, offspring=4, generations=1, tournament_every=0, batch_size=6,
                   device="cpu", finalists=0)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FNE_CACHE_DIR", str(tmp_path / "cache"))


def three_class_folder(root, per_class: int = 14, size: int = 48):
    """Three classes of real sample images upscaled to size x size, one PNG each."""
    images, labels, classes = sample_arrays()
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(3)])
    x = torch.from_numpy(images[keep]).permute(0, 3, 1, 2).float()
    big = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).round().clamp(0, 255)
    pixels = big.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return write_folder(root, pixels, labels[keep], classes[:3])


def test_a_three_class_folder_runs_search_export_train_and_load(tmp_path):
    data = three_class_folder(tmp_path / "pets")
    run, model = tmp_path / "run", tmp_path / "model.pt"
    assert invoke(search, [*TINY, "--data", str(data), "--out", str(run)])[0] == 0
    record = json.loads((run / "config.json").read_text())
    assert record["dataset"]["format"] == "imagefolder"
    assert record["dataset"]["classes"] == ["airplane", "automobile", "bird"]
    assert record["dataset"]["image_size"] == [48, 48] and record["dataset"]["image_size_used"] == 32
    assert record["fitness"]["num_classes"] == 3 and len(pd.read_csv(run / "history.csv")) == 8
    assert invoke(export, [str(run), "-o", str(model), "--channels", "4", "--layers", "1"])[0] == 0
    code, err = invoke(train, [str(model), "--data", str(data), "--epochs", "1", "--train-images", "9",
                               "--val-images", "3", "--batch-size", "4", "--device", "cpu", "--no-progress"])
    assert code == 0, err
    network = fne.load_model(model)
    assert network(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    stored = torch.load(model, weights_only=True)
    assert stored["data"]["classes"] == ["airplane", "automobile", "bird"] and stored["data"]["input_size"] == [32, 32]
    assert stored["training"]["epochs"] == 1


def test_train_refuses_data_with_other_classes(tmp_path):
    model = tmp_path / "model.pt"
    assert invoke(export, ["--genotype", "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|",
                           "-o", str(model), "--channels", "4", "--layers", "1"])[0] == 0  # CIFAR-10: 10 classes
    code, err = invoke(train, [str(model), "--data", str(three_class_folder(tmp_path / "pets")), "--epochs", "1",
                               "--device", "cpu", "--no-progress"])
    assert_one_error_line(code, err, "the model file was made for")


def test_resume_refuses_a_changed_dataset(tmp_path):
    data = three_class_folder(tmp_path / "pets")
    config = SearchConfig(**TINY_CONFIG, data=str(data))
    run_search(config, tmp_path / "run", progress=False, stop_after=0)
    (data / "bird" / "00000.png").write_bytes((data / "bird" / "00030.png").read_bytes())  # another image
    with pytest.raises(CheckpointError, match="was searched on imagefolder"):
        run_search(config, resume=tmp_path / "run", progress=False)
    code, err = invoke(search, ["--resume", str(tmp_path / "run")])
    assert_one_error_line(code, err, "was searched on")


def test_a_folder_of_the_sample_searches_as_the_same_images_in_an_npz(tmp_path):
    images, labels, classes = sample_arrays()
    images, labels = class_major(images, labels)  # the folder's order
    folder = write_folder(tmp_path / "folder", images, labels, classes)
    npz = tmp_path / "same.npz"
    np.savez(npz, images=images, labels=labels, class_names=np.array(classes))
    tables = []
    for data, out in ((folder, "a"), (npz, "b")):
        result = run_search(SearchConfig(**TINY_CONFIG, data=str(data)), tmp_path / out, progress=False)
        tables.append(result.history.drop(columns=["seconds", "evaluation_seconds"], errors="ignore"))
    columns = ["genotype", *SearchConfig(space="nb201").heuristics]
    pd.testing.assert_frame_equal(tables[0][columns], tables[1][columns], check_exact=True)


def test_data_dir_is_an_alias_of_data():
    for flag in ("--data", "--data-dir"):
        assert search.make_context("search", [flag, "x/y"]).params["data"] == "x/y"
    assert search.make_context("search", ["--image-size", "native"]).params["image_size"] == 0


@pytest.mark.parametrize("case", ["empty class", "one class"])
def test_bad_data_exits_2_with_one_line_and_no_run_folder(tmp_path, case):
    data = three_class_folder(tmp_path / "pets", per_class=3)
    if case == "empty class":
        for file in (data / "bird").iterdir():
            file.unlink()
    else:
        for name in ("automobile", "bird"):
            for file in (data / name).iterdir():
                file.unlink()
            (data / name).rmdir()
    code, err = invoke(search, [*TINY, "--data", str(data), "--out", str(tmp_path / "run")])
    assert_one_error_line(code, err, str(data))
    assert not (tmp_path / "run").exists()


def test_legacy_run_config_reads_data_dir():
    from fne.run.config import config_from_dict, run_config_dict

    saved = run_config_dict(SearchConfig(space="nb201"))
    saved["search"]["data_dir"] = saved["search"].pop("data")
    assert config_from_dict(saved).data is None
