"""fne's threading rule (fne/threads.py) and the options every command shares (fne/cli_options.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from fne.cli import COMMANDS, cli, run_command
from fne.cli_options import DEVICE, DeviceType, device_option, threads_option
from fne.threads import apply_thread_rule, default_threads, prepare_openmp, usable_cores


@pytest.fixture
def restore_threads():
    """Leave torch's thread count as the suite had it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@click.command()
@threads_option
@device_option
def probe(device: str) -> None:
    """A command with the shared options that echoes what it got."""
    click.echo(f"{device} {torch.get_num_threads()}")


def test_rule_sets_threads_and_passive_waiting(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert apply_thread_rule(3) == 3
    assert torch.get_num_threads() == 3
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # inherited by every process fne spawns


def test_default_is_fne_threads_else_usable_cores(restore_threads, monkeypatch):
    assert usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("FNE_THREADS", raising=False)
    assert default_threads() == usable_cores()
    assert apply_thread_rule() == usable_cores() == torch.get_num_threads()
    monkeypatch.setenv("FNE_THREADS", "1")
    assert apply_thread_rule() == 1 == torch.get_num_threads()
    monkeypatch.setenv("FNE_THREADS", "two")
    with pytest.raises(ValueError, match="FNE_THREADS='two'"):
        default_threads()
    with pytest.raises(ValueError, match="threads=0"):
        apply_thread_rule(0)


def test_a_chosen_wait_policy_is_kept(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    prepare_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_threads_option_parses_and_applies_the_rule(restore_threads, monkeypatch):
    monkeypatch.delenv("FNE_THREADS", raising=False)
    assert CliRunner().invoke(probe, ["--threads", "1"]).output.split() == ["auto", "1"]
    assert CliRunner().invoke(probe, []).output.split() == ["auto", str(usable_cores())]
    assert CliRunner().invoke(probe, [], env={"FNE_THREADS": "1"}).output.split() == ["auto", "1"]
    refused = CliRunner().invoke(probe, ["--threads", "0"])
    assert refused.exit_code == 2 and "--threads" in refused.output


@pytest.mark.parametrize("text,expected", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"),
                                           (" CUDA:0 ", "cuda:0"), ("CPU", "cpu")])
def test_device_type_accepts(text, expected):
    assert DEVICE.convert(text, None, None) == expected


@pytest.mark.parametrize("text", ["tpu", "gpu", "cuda:", "cuda:x", "cuda1", "cuda:-1", "", "cpu:0"])
def test_device_type_refuses_with_one_line(text, restore_threads, capsys):
    assert run_command(probe, ["--device", text, "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "expected auto, cpu, cuda or cuda:N" in err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_shares_the_options(name):
    command = cli.get_command(click.Context(cli), name)
    params = {param.name: param for param in command.params}
    if name != "report":  # report draws figures from CSVs: no torch work for threads to speed up
        assert "threads" in params and params["threads"].is_eager
    if "device" in params:
        assert isinstance(params["device"].type, DeviceType)
    if name in ("search", "plot-scores", "train"):
        assert "device" in params


REPO = Path(__file__).resolve().parents[1]
ENTRIES = {  # every way in, each failing fast on a missing input after torch (and OpenMP) loaded
    "fne": ["-c", "from fne.cli import main; main()", "search", "--data-dir", "{tmp}/missing", "--out", "{tmp}/run"],
    "plot_scores": ["-c", "from fne.cli import plot_scores_main; plot_scores_main()", "--ground-truth",
                    "{tmp}/missing.csv", "--out", "{tmp}/out"],
    "NAS_on_cifar10.py": [str(REPO / "NAS_on_cifar10.py"), "--data-dir", "{tmp}/missing", "--out", "{tmp}/run"],
    "plots/plot_scores.py": [str(REPO / "plots" / "plot_scores.py"), "--ground-truth", "{tmp}/missing.csv", "--out",
                             "{tmp}/out"],
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_entry_points_set_passive_waiting_before_torch_loads(entry, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", FNE_THREADS="1")  # libgomp prints its settings when it loads
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in ENTRIES[entry]]
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path)
    if "GOMP_SPINCOUNT" not in done.stderr:
        pytest.skip("torch does not use GNU OpenMP here")
    assert "GOMP_SPINCOUNT = '0'" in done.stderr  # passive: waiting threads sleep instead of spinning
    assert done.returncode == 2 and "missing" in done.stderr.splitlines()[-1]
