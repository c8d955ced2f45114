"""Every command's option defaults equal its config's field defaults, and the Python API's equal the CLI's.

The defaults are read from the click commands and the dataclasses themselves (nothing here repeats a value),
so a default changed in one place but not the other fails here.
"""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

from fne.cli_options import config_values, param_of
from fne.commands.export import export
from fne.commands.plot_scores import plot_scores
from fne.commands.search import search
from fne.commands.train import train
from fne.export import ExportConfig, default_builder
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig
from fne.scoring.fitness import FitnessConfig, space_heuristics
from fne.study.config import ScoreStudyConfig
from fne.training.recipe import TrainConfig

COMMANDS = {"search": (search, SearchConfig), "train": (train, TrainConfig), "export": (export, ExportConfig),
            "plot-scores": (plot_scores, ScoreStudyConfig)}


def click_defaults(command: click.Command) -> dict[str, object]:
    """Parameter name -> the default click gives it when the option is left out."""
    ctx = click.Context(command)
    return {param.name: param.get_default(ctx) for param in command.params}


def field_defaults(config_class: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(config_class) if "cli" in f.metadata}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_config_option_defaults_to_its_field(name):
    command, config_class = COMMANDS[name]
    defaults = click_defaults(command)
    options = {param_of(f): defaults[param_of(f)] for f in dataclasses.fields(config_class) if "cli" in f.metadata}
    assert config_values(config_class, options) == field_defaults(config_class)


@pytest.mark.parametrize("name", COMMANDS)
def test_no_option_is_left_undeclared_on_the_config(name):
    command, config_class = COMMANDS[name]
    declared = {param_of(f) for f in dataclasses.fields(config_class) if "cli" in f.metadata}
    # What remains are the command's own inputs and outputs, not settings of the computation.
    own = {"search": {"out", "resume", "workers", "scheduler", "progress", "verbose"},
           "train": {"model_file", "resume", "output", "log_path", "checkpoint_path", "progress"},
           "export": {"run_dir", "output", "program_path", "onnx_path", "onnx_tolerance", "force"},
           "plot-scores": {"cache_path", "out", "progress"}}[name]
    assert {p.name for p in command.params if p.expose_value} - declared == own


def test_a_config_built_from_the_command_defaults_equals_the_default_config():
    defaults = click_defaults(train)
    assert TrainConfig(**config_values(TrainConfig, defaults)) == TrainConfig()
    defaults = click_defaults(plot_scores)
    assert ScoreStudyConfig(**config_values(ScoreStudyConfig, defaults)) == ScoreStudyConfig()


def test_fne_score_aggregates_as_the_search_and_the_study_do():
    import fne
    from fne import api

    search_default = next(f.default for f in dataclasses.fields(SearchConfig) if f.name == "aggregate")
    assert inspect.signature(api.score).parameters["aggregate"].default == search_default
    assert click_defaults(search)["aggregate"] == search_default
    assert click_defaults(plot_scores)["aggregate"] == search_default
    assert "aggregate" not in inspect.signature(fne.score).parameters  # passed through to api.score


def test_fne_score_probes_as_the_search_does():
    search_fitness, api_fitness = SearchConfig().fitness_config(), FitnessConfig()
    for name in ("batch_size", "seed", "device"):
        assert getattr(api_fitness, name) == getattr(search_fitness, name), name
    study = ScoreStudyConfig()
    for name in ("batch_size", "seed", "device", "repeats", "batch_norm", "memory_budget_mib"):
        assert getattr(study, name) == getattr(api_fitness, name), name
    assert study.heuristics is None and click_defaults(plot_scores)["heuristics"] is None  # the space's


@pytest.mark.parametrize("space", ["darts", "nb201"])
def test_every_entry_point_scores_a_space_with_its_own_defaults(space, monkeypatch):
    from fne import api

    seen = {}

    def capture(space_object, genotypes, images, config, labels=None):
        seen["heuristics"] = config.heuristics
        raise RuntimeError("captured")

    monkeypatch.setattr(api, "score_genotypes", capture)
    with pytest.raises(RuntimeError, match="captured"):
        api.score(["x"], space=space)
    expected = space_heuristics(get_space(space))
    assert SearchConfig(space=space).heuristics == seen["heuristics"] == expected
    assert click_defaults(search)["heuristics"] is None  # resolved by SearchConfig for the space


def test_export_builder_defaults_equal_default_builder():
    for space in ("darts", "nb201"):
        assert ExportConfig().builder(space) == default_builder(space)
