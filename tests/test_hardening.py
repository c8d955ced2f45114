"""Issue 10, hardening: one error line for any bad input, no silently wrong data, nothing overwritten unasked.

Each test reproduces one class of failure of the issue; the shared fixture is one tiny real NB201 run made
with relative --ground-truth and --data-dir paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import stat
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fne
from fne.atomic import atomic_write
from fne.cli import cli, run_command
from fne.commands.plot_scores import plot_scores
from fne.commands.search import search
from fne.data.cifar10 import load_cifar10, save_arrays
from fne.errors import CheckpointError, DataError
from fne.export import default_builder, save_model
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig
from fne.run.search import load_ground_truth
from fne.study import score_study
from fne.study.score_study import ScoreCache

REPO = Path(__file__).resolve().parents[1]
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
FNE_MAIN = "import sys; from fne.cli import main; sys.argv[0] = 'fne'; main()"  # the `fne` console script
TINY_SEARCH = ["--space", "nb201", "--population", "2", "--offspring", "1", "--generations", "0",
               "--tournament-every", "0", "--batch-size", "2", "--device", "cpu", "--no-progress",
               "--finalists", "0"]


def invoke(command, args: list[str]) -> tuple[int, str]:
    """Run a command through the CLI's error boundary, in this process; (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_command(command, args, prog_name="fne")
    return code, err.getvalue()


def assert_one_error_line(code: int, err: str, *phrases: str) -> None:
    """Exit code 2 and exactly one stderr line `error: ...` holding each phrase."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def read_ground_truth(*args, **kwargs):
    """fne.data.ground_truth.read_ground_truth, imported late so the other tests also run on older code."""
    from fne.data.ground_truth import read_ground_truth

    return read_ground_truth(*args, **kwargs)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def digests(*paths: Path) -> dict[str, str]:
    """SHA-256 of every file under the given files and folders."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 2-individual NB201 run, started with relative --ground-truth and --data-dir paths."""
    home = tmp_path_factory.mktemp("started_here")
    (home / "gt").mkdir()
    rows = "".join(f"{arch},{90.0 - i}\n" for i, arch in enumerate(ARCHS))
    write_csv(home / "gt" / "full.csv", "arch_str,cifar10_test\n" + rows)
    save_arrays(load_cifar10(None, "train"), home / "data" / "sample.npz")
    before = Path.cwd()
    os.chdir(home)
    try:
        code, err = invoke(search, [*TINY_SEARCH, "--ground-truth", "gt/full.csv", "--data-dir",
                                    "data/sample.npz", "--out", "run"])
    finally:
        os.chdir(before)
    assert code == 0, err
    return home / "run"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "m.pt", "C+CC+kCC", default_builder("nb201", 4, 1))


# ---------------------------------------------------------------- ground truth: no silently wrong data
def test_conflicting_duplicate_accuracies_are_refused_naming_both_rows(tmp_path):
    path = write_csv(tmp_path / "gt.csv", f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n{ARCHS[1]},80\n{ARCHS[0]},93.2\n")
    with pytest.raises(DataError, match=r"rows 2 and 4 .* two accuracies, 94.1 and 93.2"):
        read_ground_truth(path, get_space("nb201"))
    # The search's loader is the same function: it refuses too (it kept the last accuracy before).
    with pytest.raises(DataError, match="rows 2 and 4"):
        load_ground_truth(get_space("nb201"), path)


@pytest.mark.parametrize("value", ["inf", "-5", "1e9", "nan", "100.01"])
def test_accuracies_outside_0_to_100_are_refused_naming_the_row(tmp_path, value):
    path = write_csv(tmp_path / "gt.csv", f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n{ARCHS[1]},{value}\n")
    for load in (lambda: load_ground_truth(get_space("nb201"), path),
                 lambda: score_study.load_ground_truth(path, "arch_str", "cifar10_test", get_space("nb201"))):
        with pytest.raises(DataError, match=rf"row 3: cifar10_test='{value}' is (outside \[0, 100\]|not a number)"):
            load()


def test_identical_duplicate_rows_count_once_and_are_logged(tmp_path, caplog):
    path = write_csv(tmp_path / "gt.csv", "arch_str,cifar10_test\n"
                     f"{ARCHS[0]},94.1\n{ARCHS[1]},80\n{ARCHS[2]},10\n{ARCHS[1]},80\n")
    with caplog.at_level(logging.WARNING, logger="fne"):
        table = score_study.load_ground_truth(path, "arch_str", "cifar10_test", get_space("nb201"))
    assert list(table.arch_str) == ARCHS and list(table.cifar10_test) == [94.1, 80.0, 10.0]
    assert "dropped 1 duplicate row(s) (row 5 repeats row 3)" in caplog.text
    # plot_scores correlates this table: each architecture once, so a repeated row cannot weigh twice.
    assert score_study.correlate(table.assign(params=[3, 2, 1]), "cifar10_test", ["params"]).n.item() == 3


@pytest.mark.parametrize("text, message", [
    (f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n\n\n{ARCHS[1]},abc\n", "row 5: cifar10_test='abc' is not a number"),
    (f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n,80\n", "row 3: empty arch_str"),
    (f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n{ARCHS[1]},\n", "row 3: empty cifar10_test"),
    (f"arch_str,cifar10_test\n{ARCHS[0]},94.1,7\n", "row 2: 3 fields, but the header has 2"),
    (f"arch,acc\n{ARCHS[0]},94.1\n", "has no column 'arch_str'; its columns are arch, acc"),
    ("arch_str,cifar10_test\n\n", "has no rows"),
])
def test_ground_truth_messages_name_the_row_in_one_line(tmp_path, text, message):
    path = write_csv(tmp_path / "gt.csv", text)
    with pytest.raises(DataError) as caught:
        load_ground_truth(get_space("nb201"), path)
    assert message in str(caught.value) and "\n" not in str(caught.value) and "'nan'" not in str(caught.value)


def test_binary_ground_truth_is_one_line(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(DataError, match="is not a readable text CSV") as caught:
        read_ground_truth(path, get_space("nb201"))
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- relative input paths and --resume
def test_input_paths_are_stored_absolute_and_resume_works_from_elsewhere(tiny_run, tmp_path, monkeypatch):
    home = tiny_run.parent
    search_config = json.loads((tiny_run / "config.json").read_text())["search"]
    assert search_config["ground_truth"] == str(home / "gt" / "full.csv")
    assert search_config["data"] == str(home / "data" / "sample.npz")
    # Another folder with files of the same relative names must not be read by --resume.
    (tmp_path / "gt").mkdir()
    write_csv(tmp_path / "gt" / "full.csv", "arch_str,cifar10_test\n")
    monkeypatch.chdir(tmp_path)
    code, err = invoke(search, ["--resume", str(tiny_run), "--no-progress"])
    assert code == 0, err


@pytest.mark.skipif("ground_truth_sha256" not in {f.name for f in fields(SearchConfig)},
                    reason="needs the field SearchConfig.ground_truth_sha256 (fne/run/config.py)")
def test_resume_warns_when_the_ground_truth_changed(tmp_path, caplog):
    gt = write_csv(tmp_path / "gt.csv", "".join(["arch_str,cifar10_test\n"] + [f"{a},50\n" for a in ARCHS]))
    code, err = invoke(search, [*TINY_SEARCH, "--ground-truth", str(gt), "--out", str(tmp_path / "run")])
    assert code == 0, err
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["search"]["ground_truth_sha256"]
    assert stored == hashlib.sha256(gt.read_bytes()).hexdigest()
    write_csv(gt, gt.read_text() + "C+CC+CCC,51\n")
    with caplog.at_level(logging.WARNING):
        code, err = invoke(search, ["--resume", str(tmp_path / "run"), "--no-progress"])
    assert code == 0 and "changed since the run started" in caplog.text


# ---------------------------------------------------------------- one line, never a traceback
def _bad_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "some_file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(17).bytes(5000))
    write_csv(tmp_path / "abc.csv", f"arch_str,cifar10_test\n{ARCHS[0]},abc\n")
    return {"file": tmp_path / "some_file", "under_file": tmp_path / "some_file" / "sub",
            "folder": tmp_path / "folder", "garbage": tmp_path / "garbage.pt", "abc": tmp_path / "abc.csv"}


@pytest.mark.parametrize("case", [
    ("search", ["--out", "/proc/x"], "--out /proc/x: cannot write in /proc"),
    ("search", ["--out", "{under_file}"], "is a file, not a folder"),
    ("search", ["--ground-truth", "{abc}", "--out", "{folder}/run"], "cifar10_test='abc' is not a number"),
    ("export", ["--genotype", "C+CC+kCC", "-o", "{folder}"], "is a folder; expected the path of a file"),
    ("export", ["--genotype", "C+CC+kCC", "-o", "/proc/m.pt"], "cannot write in /proc"),
    ("export", ["--genotype", "C+CC+kCC", "-o", "{under_file}.pt"], "is a file, not a folder"),
    ("train", ["{garbage}", "--epochs", "1"], "is truncated or not a torch file (IndexError"),
    ("plot-scores", ["--ground-truth", "{abc}", "--out", "{file}"], "--out"),
    ("report", ["{run}", "-o", "{file}"], "-o"),
], ids=lambda case: " ".join([case[0], *case[1][-2:]]))
def test_bad_paths_end_in_one_error_line(tiny_run, tmp_path, case):
    name, args, phrase = case
    paths = {key: str(value) for key, value in _bad_paths(tmp_path).items()} | {"run": str(tiny_run)}
    args = [arg.format(**paths) for arg in args]
    if name == "search":
        args = [*TINY_SEARCH, *args]
    code, err = invoke(cli, [name, *args])
    assert_one_error_line(code, err, phrase)
    assert not (tmp_path / "folder" / "run").exists()


@pytest.mark.parametrize("seed", [17, 21, 0, 1, 2])
def test_load_model_on_random_bytes_is_a_checkpoint_error(tmp_path, seed):
    path = tmp_path / "garbage.pt"
    path.write_bytes(np.random.default_rng(seed).bytes(5000))  # seeds 17 and 21 raised a bare IndexError
    with pytest.raises(CheckpointError, match="garbage.pt is (truncated or not a torch file|not a safe fne file)"):
        fne.load_model(path)


def test_model_file_messages_are_whole_sentences(tmp_path):
    import torch

    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError) as caught:
        fne.load_model(path)
    message = str(caught.value)
    assert "torch.nn.modules.linear.Linear" in message and message.endswith("plain values and tensors only")


def test_a_corrupt_score_cache_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "score_cache.jsonl"
    good = ScoreCache(path, "key")
    good.add("C+CC+kCC", {"ntk": 1.0})
    with path.open("ab") as stream:
        stream.write(np.random.default_rng(3).bytes(4000) + b"\n12\n[1, 2]\n" + b'{"format": 1, "key": "key", "ge')
    with caplog.at_level(logging.WARNING, logger="fne"):
        cache = ScoreCache(path, "key")
    assert cache.rows == {"C+CC+kCC": {"ntk": 1.0}} and "skipped" in caplog.text
    cache.add("k+kk+kkk", {"ntk": 2.0})  # appended after a torn line: must still read back
    assert ScoreCache(path, "key").rows == {"C+CC+kCC": {"ntk": 1.0}, "k+kk+kkk": {"ntk": 2.0}}


@pytest.mark.parametrize("entry", [["-m", "fne.cli"], [str(REPO / "NAS_on_cifar10.py")],
                                   [str(REPO / "plots" / "plot_scores.py")]], ids=["fne", "NAS_on_cifar10", "plot"])
def test_entry_points_print_one_line_and_exit_2(tmp_path, entry):
    (tmp_path / "some_file").write_text("x")
    if entry[0] == "-m":
        command = [sys.executable, "-c", FNE_MAIN, "export", "--genotype", "C+CC+kCC", "-o", "some_file/m.pt"]
    elif entry[0].endswith("NAS_on_cifar10.py"):
        command = [sys.executable, *entry, *TINY_SEARCH, "--out", "/proc/x"]
    else:
        gt = write_csv(tmp_path / "gt.csv", f"arch_str,cifar10_test\n{ARCHS[0]},94.1\n")
        command = [sys.executable, *entry, "--ground-truth", str(gt), "--out", "some_file", "--no-progress"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert_one_error_line(done.returncode, done.stderr)


# ---------------------------------------------------------------- nothing lost, nothing overwritten
def test_failed_commands_leave_earlier_results_byte_identical(tiny_run, model_file, tmp_path):
    before = digests(tiny_run, model_file)
    failing = [
        (search, [*TINY_SEARCH, "--out", str(tiny_run)]),
        (search, ["--resume", str(tiny_run), "--seed", "5"]),
        (cli, ["export", str(tiny_run), "-o", str(model_file)]),
        (cli, ["export", str(tiny_run), "-o", str(tiny_run / "config.json")]),
        (cli, ["export", str(tiny_run), "-o", str(tiny_run)]),
        (cli, ["report", str(tiny_run), "-o", str(tiny_run / "history.csv")]),
        (cli, ["train", str(model_file), "--epochs", "1", "-o", str(tiny_run / "best.json" / "m.pt")]),
        (plot_scores, ["--ground-truth", str(tiny_run.parent / "gt" / "full.csv"), "--out",
                       str(tiny_run / "config.json")]),
    ]
    for command, args in failing:
        code, err = invoke(command, args)
        assert_one_error_line(code, err)
    assert digests(tiny_run, model_file) == before


def test_export_replaces_a_model_file_only_with_force(model_file, tmp_path):
    target = tmp_path / "m.pt"
    target.write_bytes(model_file.read_bytes())
    code, err = invoke(cli, ["export", "--genotype", "k+kk+kkk", "--channels", "4", "--layers", "1", "-o",
                             str(target)])
    assert_one_error_line(code, err, "already exists; pass --force")
    assert target.read_bytes() == model_file.read_bytes()
    code, err = invoke(cli, ["export", "--genotype", "k+kk+kkk", "--channels", "4", "--layers", "1", "-o",
                             str(target), "--force"])
    assert code == 0, err
    assert target.read_bytes() != model_file.read_bytes()


def test_bad_data_dir_leaves_no_stub_run_folder(tmp_path):
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80not a pickle")
    code, err = invoke(search, [*TINY_SEARCH, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert_one_error_line(code, err, "CIFAR-10")
    assert not (tmp_path / "run").exists()  # a retry with the same --out is not blocked


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "table.csv", lambda stream: stream.write(b"a\n"))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)  # a replaced file keeps the mode its owner gave it
    atomic_write(path, lambda stream: stream.write(b"b\n"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_run_files_are_readable_like_other_outputs(tiny_run):
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("config.json", "history.csv", "best.json"):
        assert stat.S_IMODE((tiny_run / name).stat().st_mode) == 0o666 & ~umask, name


# ---------------------------------------------------------------- the console stays quiet without -v
def test_workers_print_no_info_logs_without_v(tmp_path):
    pytest.importorskip("distributed")
    # Through the `fne` group, whose console logging set-up let dask's (and the run's) INFO records through.
    command = [sys.executable, "-c", FNE_MAIN, "search", *TINY_SEARCH, "--workers", "1", "--out",
               str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "distributed." not in done.stderr and " INFO " not in done.stderr, done.stderr
    assert pd.read_csv(tmp_path / "run" / "history.csv").shape[0] == 2
    assert " INFO fne.run" in (tmp_path / "run" / "search.log").read_text()  # the run's log keeps them


def test_group_v_shows_the_runs_info_logs(tmp_path):
    command = [sys.executable, "-c", FNE_MAIN, "-v", "search", *TINY_SEARCH, "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert " INFO fne.run" in done.stderr


def test_a_decompression_bomb_in_an_image_folder_ends_in_one_line(tmp_path):
    from tests.data.dataset_fixtures import synthetic, write_folder
    from tests.data.test_dataset_errors import _png_header_only

    images, labels = synthetic(8, (8, 8), 3, 2)
    write_folder(tmp_path / "images", images, labels, ("a", "b"))
    bomb = tmp_path / "images" / "a" / "bomb.png"
    bomb.write_bytes(_png_header_only(40_000, 40_000))
    code, err = invoke(search, [*TINY_SEARCH, "--data", str(tmp_path / "images"), "--out", str(tmp_path / "run")])
    assert_one_error_line(code, err, str(bomb), "89,478,485", "FNE_MAX_IMAGE_PIXELS")
    assert not (tmp_path / "run").exists()
