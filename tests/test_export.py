"""Model files: exact rebuild, torch.export parity, safe loading of bad files, picking cells out of runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import fne
from fne.cli import cli, run_command
from fne.data.cifar10 import heuristic_batch
from fne.errors import CheckpointError, ConfigError, GenotypeError
from fne.export import (
    BuilderConfig,
    canonical_genotype,
    default_builder,
    export_program,
    genotype_from_run,
    load_model,
    read_model_file,
    save_model,
)
from fne.genotopheno.genotype import format_genotype, parse, published
from fne.genotopheno.network import build_network, count_parameters
from fne.genotopheno.spaces import get_space

NB201_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SMALL = {"darts": (8, 5), "nb201": (8, 1)}



@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return heuristic_batch(None, 8, seed=0)  # real CIFAR-10 images shipped with fne


def _trained_looking(model: torch.nn.Module, images: torch.Tensor) -> torch.nn.Module:
    """Move weights and BN statistics away from the seeded init, so a rebuild-from-seed would not match."""
    model.train()
    with torch.no_grad():
        model(images)  # updates running means/vars
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("space, genotype", [("darts", "DARTS_V2"), ("nb201", NB201_BEST)])
def test_round_trip_rebuilds_parameters_and_outputs(tmp_path, images, space, genotype):
    space_name, canonical = canonical_genotype(genotype)
    assert space_name == space
    C, layers = SMALL[space]
    builder = default_builder(space, C, layers, seed=3)
    from fne.export import build_model

    original = _trained_looking(build_model(canonical, builder), images)
    path = save_model(tmp_path / "m.pt", canonical, builder, original, source={"note": "test"})
    loaded = fne.load_model(path)  # the package-level lazy entry point
    assert type(loaded) is type(original)
    assert count_parameters(loaded, include_auxiliary=True) == count_parameters(original, include_auxiliary=True)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(images), original(images))
    stored = read_model_file(path)
    assert stored.genotype == canonical and stored.builder == builder and stored.source == {"note": "test"}


def test_darts_v2_evaluation_network_has_published_parameter_count(tmp_path):
    path = save_model(tmp_path / "darts_v2.pt", "DARTS_V2", default_builder("darts"))
    model = load_model(path)
    assert read_model_file(path).builder == BuilderConfig("darts", 36, 20, 10, True, 0.2, 0)
    assert count_parameters(model) == 3_349_342  # DARTS paper, CIFAR-10 (auxiliary head excluded)
    reductions = [i for i, cell in enumerate(model.cells) if cell.reduction]
    assert reductions == [20 // 3, 2 * 20 // 3]


def test_nb201_defaults_are_the_tiny_network(tmp_path):
    path = save_model(tmp_path / "nb.pt", NB201_BEST, default_builder("nb201"))
    model = load_model(path)
    reference = get_space("nb201").build(NB201_BEST)  # C=16, N=5
    assert count_parameters(model) == count_parameters(reference)
    assert len(model.cells) == 5 * 3 + 2


@pytest.mark.parametrize("space, genotype", [("darts", "DARTS_V2"), ("nb201", NB201_BEST)])
def test_torch_export_program_matches_eager(tmp_path, images, space, genotype):
    _, canonical = canonical_genotype(genotype)
    from fne.export import build_model

    model = _trained_looking(build_model(canonical, default_builder(space, *SMALL[space])), images)
    program_path = tmp_path / "m.pt2"
    torch.export.save(export_program(model), program_path)
    runnable = torch.export.load(program_path).module()  # no fne code needed to run it
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(runnable(images), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(runnable(images[:3]), expected[:3], rtol=1e-5, atol=1e-5)  # dynamic batch


def test_canonical_genotype_forms():
    assert canonical_genotype("DARTS_V2") == ("darts", format_genotype(published("DARTS_V2")))
    assert canonical_genotype(NB201_BEST) == ("nb201", "C+CC+kCC")
    assert canonical_genotype("C+CC+kCC", "nb201") == ("nb201", "C+CC+kCC")
    with pytest.raises(GenotypeError, match="neither a published cell"):
        canonical_genotype("not-a-cell")
    with pytest.raises(ConfigError, match="DARTS cell"):
        canonical_genotype("DARTS_V2", "nb201")
    with pytest.raises(ConfigError, match="auxiliary"):
        default_builder("nb201", auxiliary=True)


def test_as_searched_keeps_the_genotype_widths_and_cell_counts():
    from fne.export import build_model

    genotype = "s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|12.24.40|2.1.1"
    model = build_model(genotype, default_builder("darts", as_searched=True, auxiliary=False))
    reference = build_network(parse(genotype))  # C=None, layers=None: the genotype's own layout
    assert count_parameters(model) == count_parameters(reference)
    assert len(model.cells) == 2 + 1 + 1 + 1 + 1  # 2 normal, reduction, 1 normal, reduction, 1 normal
    with pytest.raises(ConfigError, match="as_searched"):
        default_builder("darts", 8, as_searched=True)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "m.pt"
    return save_model(path, "C+CC+kCC", default_builder("nb201", 8, 1))


def _write(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d, good: d / "missing.pt", "does not exist"),
    (lambda d, good: (d / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2]) and d / "cut.pt",
     "truncated"),
    (lambda d, good: (d / "text.pt").write_text("hello") and d / "text.pt", "truncated or not a torch file"),
    (lambda d, good: _write(d / "sd.pt", {"weight": torch.zeros(2)}), "not an fne model file"),
    (lambda d, good: _write(d / "module.pt", torch.nn.Linear(2, 2)), "not a safe fne file"),
    (lambda d, good: _write(d / "future.pt", {**torch.load(good, weights_only=True), "format_version": 99}),
     "format version 99"),
    (lambda d, good: _write(d / "badgeno.pt", {**torch.load(good, weights_only=True), "genotype": "Z+ZZ+ZZZ"}),
     "damaged"),
    (lambda d, good: _write(d / "badweights.pt", {**torch.load(good, weights_only=True),
                                                  "state_dict": {"x": torch.zeros(1)}}), "do not fit"),
])
def test_bad_files_raise_one_checkpoint_error(tmp_path, good_file, make, message):
    path = make(tmp_path, good_file)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_cli_bad_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    from fne.commands.train import train

    assert run_command(train, [str(bad), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and str(bad) in err


def _hand_made_run(run_dir: Path) -> Path:
    """A run directory in the documented layout; scores chosen so the best rank-combined cell is known."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"space": "nb201", "seed": 0}))
    front = pd.DataFrame({
        "generation": [2, 2, 2], "id": [7, 9, 11], "genotype": ["C+CC+kCC", "c+cc+kcc", "C+Ca+kCa"],
        # ranks: id 7 -> 1+2+1 = 4 (best), id 9 -> 3+1+3 = 7, id 11 -> 2+3+2 = 7
        "ntk": [1.0, 9.0, 2.0], "linear_regions": [-5.0, -8.0, -1.0], "grad_corr": [0.1, 0.9, 0.5],
        "error": ["", "", ""],
    })
    front.to_csv(run_dir / "pareto_front.csv", index=False)
    history = pd.concat([front.assign(generation=0, id=[1, 2, 3]), front])
    history.to_csv(run_dir / "history.csv", index=False)
    return run_dir


def test_pick_from_run_directory(tmp_path):
    run_dir = _hand_made_run(tmp_path / "run")
    space, genotype, source = genotype_from_run(run_dir)
    assert (space, genotype, source["id"]) == ("nb201", "C+CC+kCC", 7)
    assert genotype_from_run(run_dir, "11")[1] == "C+Ca+kCa"
    with pytest.raises(CheckpointError, match="no individual with id"):
        genotype_from_run(run_dir, "123")
    with pytest.raises(CheckpointError, match="not an fne run directory"):
        genotype_from_run(tmp_path)


def test_cli_export_from_run_and_genotype(tmp_path):
    runner = CliRunner()
    run_dir = _hand_made_run(tmp_path / "run")
    out = tmp_path / "best.pt"
    program = tmp_path / "best.pt2"
    result = runner.invoke(cli, ["export", str(run_dir), "--layers", "1", "--channels", "8", "-o", str(out),
                                 "--torch-export", str(program)])
    assert result.exit_code == 0, result.output
    stored = read_model_file(out)
    assert stored.genotype == "C+CC+kCC" and stored.source["id"] == 7
    assert (stored.builder.C, stored.builder.layers, stored.builder.auxiliary) == (8, 1, False)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(program).module()(x), load_model(out)(x))

    out = tmp_path / "v2.pt"
    result = runner.invoke(cli, ["export", "--genotype", "DARTS_V2", "--layers", "5", "--channels", "8",
                                 "--no-auxiliary", "--seed", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = build_network(published("DARTS_V2"), 8, 5, seed=4)
    assert count_parameters(load_model(out)) == count_parameters(expected)
    assert read_model_file(out).builder.seed == 4
    assert run_command(cli, ["export", str(run_dir), "--genotype", "DARTS_V2"]) == 2  # both sources: refused
