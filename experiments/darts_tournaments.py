"""DARTS tournaments on the 600 shared NB301 cells: what each way of playing one measures, cached to disk.

    python experiments/darts_tournaments.py report/heuristics/darts/all_scores/scores.csv \
        --out report/heuristics/darts/tournaments --play alone           # every cell trained on its own
    python experiments/darts_tournaments.py report/heuristics/darts/all_scores/scores.csv \
        --out report/heuristics/darts/tournaments --play mixture --groups 100   # the search's supernet

Two ways of playing, both at the search's DARTS tournament settings (SearchConfig(space="darts")'s
`tournament_config()`: C=4, batch 16, 20 steps, DARTS's SGD for the weights; the search's images, the
shipped sample split half/half into training and held-out):

- `mixture`: the search's tournament as it is (fne.training.tournament: one supernet, softmax(alpha) over
  the group's cells, first-order DARTS). Groups are formed as the search forms them: the 600 cells shuffled
  (seeded) into groups of 4 by `split_into_tournaments`. Per group it records the alphas and, from the same
  trained supernet, two readings the literature proposes instead of alpha: each candidate's own path's
  held-out loss (its cells alone in the trained supernet; Bender et al., ICML 2018) and the held-out loss
  of the mixture without it (DARTS-PT's perturbation; Wang et al., ICLR 2021). `<out>/mixture.jsonl`.
- `alone`: each cell trained on its own on the tournament skeleton (fne.training.alone: the same weight
  settings and batch stream for every cell, seed `--seed`), its training losses and held-out loss after
  each of `--checkpoints` steps. A cell's values do not depend on its group, so any grouping can be judged
  from them. `<out>/alone.jsonl`, one line per cell and setting.

Every line is appended whole as soon as it is measured, so a killed run resumes; rerunning recomputes
nothing. The surrogate accuracies are not read here. experiments/darts_tournament_cv.py judges the picks.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from fne.evolution.survival import split_into_tournaments
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig
from fne.run.search import tournament_tensors
from fne.threads import apply_thread_rule
from fne.training.alone import held_out_loss, train_alone
from fne.training.tournament import TournamentConfig, build_supernet, candidate_networks, train_supernet

log = logging.getLogger("darts_tournaments")
HELD_OUT_IMAGES = 128  # judged on the same first 128 held-out images for every candidate


def tournament_cell(canonical: str) -> str:
    """The table's cells on the search's initial shape; the tournament skeleton replaces widths and counts."""
    return "|".join(canonical.split("|")[:2]) + "|16.32.64|1.1.1"


def search_groups(cells: list[str], size: int, seed: int) -> list[list[str]]:
    """The cells shuffled into groups of `size` exactly as TournamentSurvival shuffles a generation's children."""
    rng = np.random.default_rng(seed)
    return [[cells[i] for i in group] for group in split_into_tournaments(len(cells), size, rng)]


def read_lines(path: Path) -> list[dict]:
    """Every JSON line of a cache file (none if it does not exist yet)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def append_line(path: Path, row: dict) -> None:
    """Append one whole line (a killed run loses at most the line being measured)."""
    with path.open("a") as stream:
        stream.write(json.dumps(row) + "\n")


def setting_tag(mode: str, config: TournamentConfig, seed: int) -> str:
    """The cache key of a way of playing: what changes the values measured."""
    warmup = f" warmup{config.warmup_steps}" if mode == "mixture" else ""
    return f"{mode} C{config.C} b{config.batch_size} steps{config.steps}{warmup} lr{config.weight_lr:g} seed{seed}"


def mixture_readings(model: torch.nn.Module, held_out: tuple[torch.Tensor, torch.Tensor]) -> dict[str, list[float]]:
    """Held-out losses of the trained supernet: each candidate's own path, and the mixture without it."""
    x, y = held_out[0][:HELD_OUT_IMAGES], held_out[1][:HELD_OUT_IMAGES]
    weights = F.softmax(model.alpha.detach(), dim=0)

    def loss_with(mix: torch.Tensor) -> float:
        s0 = s1 = model.stem(x)
        for mixture in model.mixtures:  # only the cells with a weight run (a path is one cell per position)
            s0, s1 = s1, sum(w * cell(s0, s1) for w, cell in zip(mix, mixture.cells, strict=True) if w > 0)
        return float(F.cross_entropy(model.classifier(model.global_pooling(s1).flatten(1)), y))

    model.train()
    k = len(weights)
    with torch.no_grad():
        full = loss_with(weights)
        path = [loss_with(F.one_hot(torch.tensor(i), k).float()) for i in range(k)]
        without = []
        for i in range(k):
            rest = weights.clone()
            rest[i] = 0.0
            without.append(loss_with(rest / rest.sum()))
    return {"mixture_loss": [full], "path_loss": path, "without_loss": without}


def play_mixture(cells: list[str], config: TournamentConfig, images, seed: int) -> dict:
    """One tournament as the search plays it, and the readings of its trained supernet."""
    space = get_space("darts")
    train, held_out = images
    started = time.process_time()
    networks = candidate_networks(space, cells, config, 10, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # as run_tournament
        model = build_supernet(networks, space.tournament_layout, config.normalise_mixture)
        train_supernet(model, train, held_out, config, seed, torch.device("cpu"))
    trained = time.process_time() - started
    readings = mixture_readings(model, held_out)
    return {"alphas": model.alpha.detach().tolist(), **readings, "train_cpu_seconds": trained,
            "cpu_seconds": time.process_time() - started}


def play_alone(cell: str, config: TournamentConfig, images, seed: int, checkpoints: list[int]) -> dict:
    """One cell trained on its own: training losses and held-out loss after each checkpoint."""
    space = get_space("darts")
    train, held_out = images
    started = time.process_time()
    network = space.tournament_network(cell, C=config.C, cells_per_stage=config.cells_per_stage, num_classes=10,
                                       seed=seed)
    initial = held_out_loss(network, held_out, HELD_OUT_IMAGES, torch.device("cpu"))
    losses, measured = train_alone(network, train, held_out, config, seed, checkpoints=checkpoints,
                                   held_out_images=HELD_OUT_IMAGES)
    return {"train_losses": losses, "held_out": {"0": initial, **{str(k): v for k, v in measured.items()}},
            "cpu_seconds": time.process_time() - started}


def main() -> None:
    """Play what --play names for every cell or group not yet in the cache."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--play", choices=("alone", "mixture"), required=True)
    parser.add_argument("--groups", type=int, default=150, help="mixture: groups played (in the shuffle's order)")
    parser.add_argument("--cells", type=int, default=None, help="alone: only the first N cells (in group order)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the search's)")
    parser.add_argument("--checkpoints", default="6,12", help="alone: also the held-out loss after these steps")
    parser.add_argument("--seed", type=int, default=0, help="group shuffle and training seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reverse", action="store_true", help="walk from the last item (a second process)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    apply_thread_rule(args.threads)
    search = SearchConfig(space="darts", seed=args.seed, device="cpu")
    config = search.tournament_config()
    if args.steps is not None:
        config = replace(config, steps=args.steps, warmup_steps=args.steps // 3)
    tag = setting_tag(args.play, config, args.seed) + (f" threads{args.threads}" if args.threads != 1 else "")
    images = tournament_tensors(search)
    cells = [tournament_cell(c) for c in pd.read_csv(args.scores)["canonical"]]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.play}.jsonl"
    done = {(row["setting"], row["key"]) for row in read_lines(path)}
    groups = search_groups(cells, config.size, args.seed)
    if args.play == "mixture":
        items = [";".join(g) for g in groups[:args.groups]]
    else:  # in the groups' order, so that the mixture's groups are complete first
        items = [cell for group in groups for cell in group][:args.cells]
    checkpoints = [int(c) for c in args.checkpoints.split(",") if c]
    for number in (reversed(range(len(items))) if args.reverse else range(len(items))):
        key = items[number]
        if (tag, key) in done:
            continue
        if args.play == "mixture":
            row = play_mixture(key.split(";"), config, images, args.seed)
        else:
            row = play_alone(key, config, images, args.seed, checkpoints)
        append_line(path, {"setting": tag, "key": key, **row})
        done.add((tag, key))
        log.info("%s %d/%d: %.1f CPU-s", args.play, number + 1, len(items), row["cpu_seconds"])


if __name__ == "__main__":
    main()
