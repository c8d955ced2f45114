"""Every command against generated bad paths and files: exit 2, one `error:` line, no traceback, nothing changed.

A new option that takes a path joins SLOTS, and hypothesis tries it with each kind of bad path: an existing
file where a folder goes (and the reverse), a file under a file, an unwritable /proc path, random bytes as
a model file, run config, CSV or data file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fne.cli import cli, run_command
from fne.errors import DataError, GenotypeError
from fne.export import default_builder, save_model
from fne.genotopheno.spaces import get_space
from fne.study.score_study import ScoreCache

TINY_SEARCH = ["search", "--space", "nb201", "--population", "2", "--offspring", "1", "--generations", "0",
               "--tournament-every", "0", "--batch-size", "2", "--device", "cpu", "--no-progress",
               "--finalists", "0"]
GT_HEADER = "arch_str,cifar10_test\n"
GOOD_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

# What a bad path can be, by the kind of thing the option expects.
BAD_OUTPUT_FILE = ("existing_folder", "under_file", "proc")
BAD_OUTPUT_FOLDER = ("existing_file", "under_file", "proc")
BAD_INPUT_FILE = ("random_bytes", "existing_folder", "missing", "under_file")
BAD_RUN_DIR = ("random_config", "existing_file", "missing")

# (arguments with {bad} where the bad path goes, what kind of path it expects)
SLOTS = [
    ([*TINY_SEARCH, "--out", "{bad}"], BAD_OUTPUT_FOLDER),
    ([*TINY_SEARCH, "--ground-truth", "{bad}", "--out", "{tmp}/new_run"], BAD_INPUT_FILE),
    ([*TINY_SEARCH, "--data-dir", "{bad}", "--out", "{tmp}/new_run"], BAD_INPUT_FILE),
    (["search", "--resume", "{bad}", "--no-progress"], BAD_RUN_DIR),
    (["export", "{run}", "-o", "{bad}"], BAD_OUTPUT_FILE),
    (["export", "--genotype", "C+CC+kCC", "-o", "{tmp}/m.pt", "--torch-export", "{bad}"], BAD_OUTPUT_FILE),
    (["export", "{bad}", "-o", "{tmp}/m.pt"], BAD_RUN_DIR),
    (["train", "{bad}", "--epochs", "1", "--no-progress"], BAD_INPUT_FILE),
    (["train", "{model}", "--epochs", "1", "--no-progress", "-o", "{bad}"], BAD_OUTPUT_FILE),
    (["train", "{model}", "--epochs", "1", "--no-progress", "--log", "{bad}"], BAD_OUTPUT_FILE),
    (["train", "{model}", "--epochs", "1", "--no-progress", "--checkpoint", "{bad}"], BAD_OUTPUT_FILE),
    (["plot-scores", "--ground-truth", "{gt}", "--out", "{bad}", "--no-progress"], BAD_OUTPUT_FOLDER),
    (["plot-scores", "--ground-truth", "{bad}", "--out", "{tmp}/study", "--no-progress"], BAD_INPUT_FILE),
    (["plot-scores", "--ground-truth", "{gt}", "--cache", "{bad}", "--out", "{tmp}/study"], BAD_OUTPUT_FILE),
    (["report", "{bad}"], BAD_RUN_DIR),
    (["report", "{run}", "-o", "{bad}"], BAD_OUTPUT_FOLDER),
]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny run, a model file and a ground-truth CSV that the bad paths are mixed with."""
    home = tmp_path_factory.mktemp("made")
    (home / "gt.csv").write_text(GT_HEADER + f"{GOOD_ARCH},94.1\n")
    code, err = invoke([*TINY_SEARCH, "--out", str(home / "run")])
    assert code == 0, err
    model = save_model(home / "m.pt", "C+CC+kCC", default_builder("nb201", 4, 1))
    return {"run": home / "run", "model": model, "gt": home / "gt.csv"}


def invoke(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_command(cli, args, prog_name="fne")
    return code, err.getvalue()


def make_bad(kind: str, tmp: Path, payload: bytes) -> str:
    """A bad path of this kind inside tmp (or under /proc)."""
    (tmp / "a_file").write_bytes(b"x")
    (tmp / "a_folder").mkdir(exist_ok=True)
    if kind == "random_bytes":
        (tmp / "random.bin").write_bytes(payload)
        return str(tmp / "random.bin")
    if kind == "random_config":
        (tmp / "run_like").mkdir()
        (tmp / "run_like" / "config.json").write_bytes(payload)
        return str(tmp / "run_like")
    return {"existing_folder": str(tmp / "a_folder"), "existing_file": str(tmp / "a_file"),
            "under_file": str(tmp / "a_file" / "sub" / "x.pt"), "proc": "/proc/fne_cannot_write/x.pt",
            "missing": str(tmp / "missing" / "nothing.csv")}[kind]


def digests(*folders: Path) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for folder in folders for f in sorted(folder.rglob("*"))
            if f.is_file()}


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_command_fails_bad_paths_with_one_line(made, data):
    args, kinds = data.draw(st.sampled_from(SLOTS), label="slot")
    kind = data.draw(st.sampled_from(kinds), label="kind")
    payload = data.draw(st.binary(max_size=4096), label="payload")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        bad = make_bad(kind, tmp, payload)
        names = {"bad": bad, "tmp": str(tmp), **{key: str(value) for key, value in made.items()}}
        before = digests(tmp, made["run"].parent)
        code, err = invoke([arg.format(**names) for arg in args])
        assert "Traceback" not in err
        assert code == 2, err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert digests(tmp, made["run"].parent) == before  # nothing earlier was changed
        assert not (tmp / "new_run").exists() and not (tmp / "m.pt").exists()  # and no stub left behind


@settings(max_examples=20, deadline=None)
@given(payload=st.binary(max_size=4096), header=st.booleans())
def test_ground_truth_of_random_bytes_is_one_line_data_error(payload, header):
    from fne.data.ground_truth import read_ground_truth

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gt.csv"
        path.write_bytes((GT_HEADER.encode() if header else b"") + payload)
        try:
            read_ground_truth(path, get_space("nb201"))
        except (DataError, GenotypeError) as error:
            assert "\n" not in str(error) and str(path) in str(error)


@settings(max_examples=20, deadline=None)
@given(payload=st.binary(max_size=4096))
def test_score_cache_reads_any_bytes(payload):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "score_cache.jsonl"
        ScoreCache(path, "key").add("C+CC+kCC", {"ntk": 1.0})
        with path.open("ab") as stream:
            stream.write(payload)
        cache = ScoreCache(path, "key")
        assert cache.rows["C+CC+kCC"] == {"ntk": 1.0}
        cache.add("k+kk+kkk", {"ntk": 2.0})
        assert ScoreCache(path, "key").rows["k+kk+kkk"] == {"ntk": 2.0}
