"""The search loop and `fne search`: run directory contract, tournaments, exact resume, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from fne.cli import run_command
from fne.commands.search import search
from fne.data.ground_truth import file_sha256
from fne.errors import CheckpointError
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, run_search
from fne.scoring.fitness import DEFAULT_HEURISTICS, ORIGINAL_HEURISTICS
from tests.shared_data import NB201_TABLE, require

GROUND_TRUTH = NB201_TABLE
# Columns the other parts (plots, export, report) read from history.csv.
HISTORY_COLUMNS = ["generation", "id", "genotype", "parents", "ntk", "linear_regions", "grad_corr", "params",
                   "flops", "seconds", "error", "selected", "selection", "front", "crowding", "rank_combined",
                   "true_accuracy"]



def toy_score(genotype: str) -> dict[str, float]:
    """A deterministic stand-in for the heuristics: prefers 3x3 convs, few skips and some variety."""
    return {"ntk": -genotype.count("C") + 0.1 * genotype.count("a"), "linear_regions": genotype.count("k"),
            "grad_corr": -len(set(genotype))}


# The toy score stands in for the original method's three heuristics, ranked linearly, best of the final population.
ORIGINAL = dict(heuristics=ORIGINAL_HEURISTICS, aggregate="linear", final_pick="population", tournament_prior=0.0,
                finalists=0)
TOY_CONFIG = SearchConfig(**ORIGINAL, space="nb201", population=6, offspring=4, generations=3, tournament_every=2,
                          tournament_size=2, tournament_steps=3, tournament_C=4, seed=11)


def _without_timing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in ("seconds",) if c in frame.columns])


def _same_run(a: Path, b: Path) -> None:
    for name in ("history.csv", "final_population.csv", "populations.csv", "pareto_front.csv", "tournaments.csv"):
        left, right = pd.read_csv(a / name), pd.read_csv(b / name)
        pd.testing.assert_frame_equal(_without_timing(left), _without_timing(right), check_exact=True)
    best_a, best_b = (json.loads((d / "best.json").read_text()) for d in (a, b))
    best_a.pop("seconds"), best_b.pop("seconds")
    assert best_a == best_b


def test_resume_after_a_kill_reaches_the_uninterrupted_result(tmp_path):
    evaluator = FunctionEvaluator(toy_score, TOY_CONFIG.heuristics)
    whole = run_search(TOY_CONFIG, tmp_path / "whole", evaluator=evaluator, progress=False)
    # "Kill" after generation 1, leaving rows of a generation 2 that never reached its checkpoint behind,
    # as a crash between the table writes and the checkpoint would.
    partial = run_search(TOY_CONFIG, tmp_path / "killed", evaluator=evaluator, progress=False, stop_after=1)
    assert partial.best is None and not (tmp_path / "killed" / "final_population.csv").exists()
    for name, column in (("history.csv", "generation"), ("populations.csv", "population_generation"),
                         ("timings.csv", "generation")):
        table = pd.read_csv(tmp_path / "killed" / name)
        pd.concat([table, table.iloc[[-1]].assign(**{column: 2})]).to_csv(tmp_path / "killed" / name, index=False)
    resumed = run_search(TOY_CONFIG, resume=tmp_path / "killed", evaluator=evaluator, progress=False)
    assert resumed.completed_generation == whole.completed_generation == 3
    _same_run(tmp_path / "whole", tmp_path / "killed")


def test_run_directory_contract_and_tournament_composition(tmp_path):
    run = run_search(TOY_CONFIG, tmp_path / "run", evaluator=FunctionEvaluator(toy_score, TOY_CONFIG.heuristics),
                     progress=False)
    directory = run.run_dir
    for name in ("config.json", "history.csv", "population.csv", "populations.csv", "pareto_front.csv",
                 "final_population.csv", "timings.csv", "tournaments.csv", "checkpoint.json", "search.log",
                 "best.json"):
        assert (directory / name).is_file(), name
    history = pd.read_csv(directory / "history.csv")
    assert all(column in history.columns for column in HISTORY_COLUMNS)
    assert any(column.startswith("strategy_p_") for column in history.columns)
    assert history["genotype"].is_unique and history["id"].is_unique
    assert list(history.groupby("generation").size()) == [6, 4, 4, 4]
    assert list(history.groupby("generation")["selection"].first()) == ["initial", "pareto", "tournament", "pareto"]
    populations = pd.read_csv(directory / "populations.csv")
    assert (populations.groupby("population_generation").size() == 6).all()

    # Generation 2 used tournaments: the winners survive (listed first), the losers do not.
    tournaments = pd.read_csv(directory / "tournaments.csv")
    assert list(tournaments["generation"].unique()) == [2]
    members = list(populations[populations["population_generation"] == 2]["id"])
    winners = list(tournaments["winner"])
    assert members[:len(winners)] == winners
    losers = {int(i) for ids in tournaments["candidates"] for i in str(ids).split(";")} - set(winners)
    assert not losers & set(members)
    selected = history[history["generation"] == 2].set_index("id")["selected"]
    assert set(selected[selected].index) == set(winners)

    # The best is the rank-combined minimum over the final population, computed independently here.
    final = pd.read_csv(directory / "final_population.csv")
    ranks = sum(rankdata(final[name], method="average") for name in ("ntk", "linear_regions", "grad_corr"))
    best = json.loads((directory / "best.json").read_text())
    assert best["genotype"] == final["genotype"].iloc[int(np.argmin(ranks))]
    assert final["best"].sum() == 1 and final.loc[final["best"], "genotype"].item() == best["genotype"]


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    evaluator = FunctionEvaluator(toy_score, TOY_CONFIG.heuristics)
    config = SearchConfig(**ORIGINAL, space="nb201", population=4, offspring=2, generations=2, tournament_every=0,
                          seed=1)
    run_search(config, tmp_path / "a", evaluator=evaluator, progress=False, stop_after=0)
    other = SearchConfig(**ORIGINAL, space="nb201", population=4, offspring=2, generations=2, tournament_every=0,
                         seed=2)
    run_search(other, tmp_path / "b", evaluator=evaluator, progress=False, stop_after=0)

    shutil.copy(tmp_path / "b" / "checkpoint.json", tmp_path / "a" / "checkpoint.json")
    with pytest.raises(CheckpointError, match="another run"):
        run_search(config, resume=tmp_path / "a", evaluator=evaluator, progress=False)
    (tmp_path / "a" / "checkpoint.json").write_text('{"format": "fne-checkpoint", "generation": ')
    with pytest.raises(CheckpointError, match="corrupt"):
        run_search(config, resume=tmp_path / "a", evaluator=evaluator, progress=False)
    with pytest.raises(CheckpointError, match="not an fne run"):
        run_search(config, resume=tmp_path, evaluator=evaluator, progress=False)


def _cli(args: list[str], capsys) -> tuple[int, str]:
    code = run_command(search, [*args, "--no-progress"], prog_name="NAS_on_cifar10.py")
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--population", "many"],
    ["--space", "resnet"],
    ["--population", "1"],
    ["--device", "tpu"],
    ["--ground-truth", "nowhere.csv"],
    ["--space", "nb201", "--ground-truth", "nowhere.csv"],
    ["--data-dir", "no/such/folder"],
    ["--resume", "no/such/run"],
    ["--extra-objective", "latency"],
])
def test_bad_input_gives_one_line_and_a_non_zero_exit(args, capsys, tmp_path):
    code, err = _cli([*args, "--out", str(tmp_path / "run")] if "--resume" not in args else args, capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "run").exists()  # nothing is created on bad input


def test_a_non_empty_out_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    code, err = _cli(["--out", str(tmp_path)], capsys)
    assert code != 0 and "not empty" in err and "--resume" in err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_nb201_search_with_real_heuristics_resumes_exactly(capsys, tmp_path):
    require(GROUND_TRUTH)
    options = ["--space", "nb201", "--population", "3", "--offspring", "2", "--generations", "2",
               "--tournament-every", "2", "--tournament-size", "2", "--tournament-steps", "2",
               "--tournament-width", "4", "--batch-size", "8", "--seed", "4", "--device", "cpu",
               "--finalists", "3", "--finalist-steps", "8", "--finalist-width", "2",
               "--ground-truth", str(GROUND_TRUTH)]
    code, err = _cli([*options, "--out", str(tmp_path / "whole")], capsys)
    assert code == 0, err
    history = pd.read_csv(tmp_path / "whole" / "history.csv")
    assert np.isfinite(history[list(DEFAULT_HEURISTICS)].to_numpy()).all()  # the defaults, labels included
    truth = pd.read_csv(GROUND_TRUTH)
    from fne.genotopheno.nb201 import from_arch_str

    lookup = dict(zip(map(from_arch_str, truth["arch_str"]), truth["cifar10_test"], strict=True))
    assert list(history["true_accuracy"]) == [lookup[g] for g in history["genotype"]]
    assert "true_accuracy" in json.loads((tmp_path / "whole" / "best.json").read_text())

    config = SearchConfig(space="nb201", population=3, offspring=2, generations=2, tournament_every=2,
                          tournament_size=2, tournament_steps=2, tournament_C=4, batch_size=8, seed=4, device="cpu",
                          finalists=3, finalist_steps=8, finalist_C=2, ground_truth=str(Path(GROUND_TRUTH).resolve()),
                          ground_truth_sha256=file_sha256(GROUND_TRUTH))
    run_search(config, tmp_path / "killed", progress=False, stop_after=1)
    code, err = _cli(["--resume", str(tmp_path / "killed"), "--seed", "5"], capsys)
    assert code != 0 and "--seed" in err  # resuming keeps the run's own settings
    code, err = _cli(["--resume", str(tmp_path / "killed")], capsys)
    assert code == 0, err
    _same_run(tmp_path / "whole", tmp_path / "killed")
    finalists = pd.read_csv(tmp_path / "whole" / "finalists.csv")
    pd.testing.assert_frame_equal(finalists, pd.read_csv(tmp_path / "killed" / "finalists.csv"), check_exact=True)
    best = json.loads((tmp_path / "whole" / "best.json").read_text())
    assert best["genotype"] == finalists.loc[finalists["winner"], "genotype"].item()


def test_the_finalists_stage_shows_a_progress_bar_over_its_steps(capsys, tmp_path):
    config = SearchConfig(space="nb201", population=3, offspring=2, generations=1, tournament_every=0,
                          batch_size=8, seed=4, device="cpu", finalists=3, finalist_steps=8, finalist_C=2)
    result = run_search(config, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    # 3 x 1 + 2 x 1 steps: rungs at 1, 2, 4 and 8 steps, the field decided after the second
    assert re.search(r"finalists \(3 training\).*5/5", err), err[-2000:]
    assert result.best["finalist_steps"] == 2


def test_a_run_opens_its_data_once(monkeypatch, tmp_path):
    """run_search opens the dataset once and hands it to the evaluator, the tournaments and the finalists."""
    import fne.run.final_pick
    import fne.run.probe_data
    import fne.run.search
    from fne.data.source import open_data

    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return open_data(*args, **kwargs)

    counted.cache_clear = open_data.cache_clear

    for module in (fne.run.search, fne.run.final_pick, fne.run.probe_data):
        monkeypatch.setattr(module, "open_data", counted)
    config = SearchConfig(space="nb201", population=3, offspring=2, generations=2, tournament_every=2,
                          tournament_size=2, tournament_steps=2, tournament_C=4, batch_size=8, seed=4, device="cpu",
                          finalists=2, finalist_steps=8, finalist_C=2)
    result = run_search(config, tmp_path / "run", progress=False)
    assert result.best is not None and (tmp_path / "run" / "tournaments.csv").exists()
    assert (tmp_path / "run" / "finalists.csv").exists()
    assert len(calls) == 1
