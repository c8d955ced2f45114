"""The ask/tell loop and its recorder: driving the loop by hand, append-only tables, tampered checkpoints."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fne.errors import CheckpointError, ConfigError
from fne.evolution.individual import scored
from fne.genotopheno.spaces import get_space
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, build_evolution, run_search
from tests.run.test_search import ORIGINAL, TOY_CONFIG, toy_score

CONFIG = SearchConfig(**ORIGINAL, space="nb201", population=5, offspring=4, generations=3, tournament_every=0, seed=4)


def _drive_by_hand(config: SearchConfig) -> list[str]:
    evolution = build_evolution(get_space(config.space), config)
    while not evolution.done:
        candidates = evolution.ask()
        answers = [scored(c, {"genotype": c.genotype, **toy_score(c.genotype)}, config.heuristics)
                   for c in candidates]
        evolution.tell(answers)
    return [ind.genotype for ind in evolution.population]


def test_ask_tell_by_hand_gives_the_population_of_run_search(tmp_path):
    run = run_search(CONFIG, tmp_path / "run", evaluator=FunctionEvaluator(toy_score, CONFIG.heuristics),
                     progress=False)
    final = pd.read_csv(run.run_dir / "populations.csv")
    last = final[final["population_generation"] == CONFIG.generations]
    assert _drive_by_hand(CONFIG) == list(last["genotype"])


def test_tell_refuses_answers_that_do_not_match_the_question():
    evolution = build_evolution(get_space("nb201"), CONFIG)
    with pytest.raises(ConfigError, match="without a preceding ask"):
        evolution.tell([])
    candidates = evolution.ask()
    answers = [scored(c, {"genotype": c.genotype, **toy_score(c.genotype)}, CONFIG.heuristics) for c in candidates]
    with pytest.raises(ConfigError, match="same order"):
        evolution.tell(answers[::-1])


def test_tables_are_append_only_across_generations(tmp_path):
    evaluator = FunctionEvaluator(toy_score, TOY_CONFIG.heuristics)
    run_search(TOY_CONFIG, tmp_path / "run", evaluator=evaluator, progress=False, stop_after=1)
    before = {name: (tmp_path / "run" / name).read_bytes() for name in ("history.csv", "populations.csv")}
    run_search(TOY_CONFIG, resume=tmp_path / "run", evaluator=evaluator, progress=False)
    for name, data in before.items():
        after = (tmp_path / "run" / name).read_bytes()
        assert len(after) > len(data) and after.startswith(data), name


def _stopped_run(tmp_path):
    evaluator = FunctionEvaluator(toy_score, TOY_CONFIG.heuristics)
    run_search(TOY_CONFIG, tmp_path / "run", evaluator=evaluator, progress=False, stop_after=1)
    return tmp_path / "run", evaluator


def test_a_checkpoint_naming_an_individual_not_in_the_history_is_refused(tmp_path):
    run_dir, evaluator = _stopped_run(tmp_path)
    path = run_dir / "checkpoint.json"
    checkpoint = json.loads(path.read_text())
    checkpoint["population_ids"][1] = 999
    path.write_text(json.dumps(checkpoint))
    with pytest.raises(CheckpointError, match=r"names population ids \[.*999.*\] but populations.csv holds"):
        run_search(TOY_CONFIG, resume=run_dir, evaluator=evaluator, progress=False)


@pytest.mark.parametrize("edit", ["score", "genotype"])
def test_an_edited_history_is_refused(tmp_path, edit):
    run_dir, evaluator = _stopped_run(tmp_path)
    path = run_dir / "history.csv"
    history = pd.read_csv(path, keep_default_na=False)
    if edit == "score":
        history.loc[1, "ntk"] = 1e-9
    else:
        history.loc[2, "genotype"] = "C+CC+CCC"
    path.write_text(history.to_csv(index=False))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        run_search(TOY_CONFIG, resume=run_dir, evaluator=evaluator, progress=False)


def test_tournament_prior_trades_alpha_against_the_heuristic_rank():
    from fne.evolution.individual import Individual
    from fne.evolution.operators import StrategyParams
    from fne.evolution.survival import TournamentSurvival
    from fne.scoring.aggregation import linear_rank_sum

    players = [Individual(i, 1, g, (), StrategyParams(()), {"s": s}) for i, (g, s) in
               enumerate([("C+CC+CCC", 3.0), ("C+CC+kCC", 1.0), ("c+cc+ccc", 2.0)])]
    weights = [0.6, 0.3, 0.1]  # the supernet prefers player 0; the heuristic prefers player 1 (r = 0, 1, 0.5)

    def survival(w: float) -> TournamentSurvival:
        return TournamentSurvival(3, None, ("s",), ranking=linear_rank_sum, ranked=("s",), prior_weight=w)

    assert survival(0.0)._winner(players, weights, 0) == 0  # the plain tournament
    # log 0.6 - w * 1 vs log 0.3 - 0: the prior wins once w > log 2
    assert survival(0.5)._winner(players, weights, 0) == 0
    assert survival(0.8)._winner(players, weights, 0) == 1
    assert survival(1e6)._winner(players, [0.0, 0.0, 1.0], 2) == 2  # disqualified (weight 0) never win
