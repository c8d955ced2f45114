"""DaskEvaluator on a real 2-process LocalCluster: same rows as in process, survives dying workers."""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from fne.data.cifar10 import heuristic_batch, heuristic_labelled_batch  # noqa: E402
from fne.errors import ConfigError, GenotypeError  # noqa: E402
from fne.genotopheno.nb201 import NB201Space  # noqa: E402
from fne.run.distributed import (  # noqa: E402
    DaskEvaluator,
    DataSpec,
    connect,
    load_images,
    make_evaluator,
    pin_device,
    start_local_cluster,
    worker_index,
)
from fne.run.evaluation import Evaluator, InProcessEvaluator  # noqa: E402
from fne.scoring.fitness import FitnessConfig, score_genotypes  # noqa: E402

VOLATILE = ["seconds"]  # wall time is the one column that may differ between back ends
C, LAYERS, BATCH = 4, 1, 8


@dataclass
class KillingSpace(NB201Space):
    """NB201 space whose build kills the worker process: once overall (`once` marker file) or for `poison`."""

    once: str = ""
    poison: str = ""

    def build(self, genotype, **kwargs):  # noqa: D102 - fault injection around the real build
        if self.poison and self.canonical(str(genotype)) == self.poison:
            os._exit(3)
        if self.once:
            try:  # O_EXCL: exactly one build, in whichever worker comes first, dies
                os.close(os.open(self.once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(3)
        return super().build(genotype, **kwargs)


LABELS = heuristic_labelled_batch(None, BATCH, 7, "cpu")[1]


@pytest.fixture(scope="module")
def setting():
    """Tiny NB201 nets, a small real CIFAR-10 batch, and 10 distinct seeded genotypes."""
    space = NB201Space(C=C, layers=LAYERS)
    config = FitnessConfig(batch_size=BATCH, seed=7, device="cpu")
    images = heuristic_batch(None, BATCH, 7, "cpu")
    rng = np.random.default_rng(0)  # the default scores include zico, whose loss needs LABELS
    genotypes = list(dict.fromkeys(space.sample(rng) for _ in range(12)))[:10]
    return space, config, images, genotypes


@pytest.fixture(scope="module")
def reference(setting):
    """The in-process oracle: score_genotypes in this process."""
    space, config, images, genotypes = setting
    return score_genotypes(space, genotypes, images, config, labels=LABELS)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes with 1 thread each on 127.0.0.1, no dashboard (as --workers 2)."""
    with start_local_cluster(2) as local, Client(local) as client:
        assert isinstance(local, LocalCluster) and local.scheduler_address.startswith("tcp://127.0.0.1:")
        assert sorted(client.nthreads().values()) == [1, 1]
        yield local, client


def assert_same_rows(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual.drop(columns=VOLATILE).reset_index(drop=True),
                                  expected.drop(columns=VOLATILE).reset_index(drop=True), check_exact=True)


def test_worker_index_and_device_pinning(monkeypatch):
    assert [worker_index(n) for n in (0, 3, "host-gpu2", "host-11", "tcp://10.0.0.1:40123", "w")] == [0, 3, 2, 11,
                                                                                                        0, 0]
    assert pin_device("cpu", 5) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pin_device("auto", 5) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [pin_device("auto", i) for i in (0, 1, 5, 7)] == ["cuda:0", "cuda:1", "cuda:1", "cuda:3"]
    assert pin_device("cuda", 6) == "cuda:2"
    assert pin_device("cuda:3", 0) == "cuda:3"  # an explicit device is used as given


def test_options_are_checked(setting):
    _, config, _, _ = setting
    with pytest.raises(ConfigError, match="--workers"):
        make_evaluator("nb201", {"C": C, "layers": LAYERS}, DataSpec(), config, workers=-1)
    with pytest.raises(ConfigError, match="exclude"):
        make_evaluator("nb201", {"C": C, "layers": LAYERS}, DataSpec(), config, workers=2, scheduler="tcp://x:1")
    with pytest.raises(ConfigError, match="tcp://127.0.0.1:9"):
        connect("tcp://127.0.0.1:9", timeout_s=1)


def test_load_images_matches_the_heuristic_batch(setting):
    _, config, images, _ = setting
    assert torch.equal(load_images(DataSpec(), config), images)
    assert torch.equal(load_images(images.clone(), config), images)


def test_dask_rows_equal_in_process_rows(setting, reference, cluster):
    space, config, images, genotypes = setting
    _, client = cluster
    with DaskEvaluator(client, space, images, config, labels=LABELS) as evaluator:
        rows = evaluator.evaluate(genotypes)
        assert_same_rows(rows, reference)
        assert (rows["error"] == "").all() and np.isfinite(rows[list(config.heuristics)].to_numpy()).all()
        # Order and repetition of the input change nothing but the order of the rows.
        order = [3, 1, 1, 9, 0, 3]
        assert_same_rows(evaluator.evaluate([genotypes[i] for i in order]), reference.iloc[order])
        with pytest.raises(GenotypeError):  # bad input fails as in process, not as +inf rows
            evaluator.evaluate([genotypes[0], "C+CC+kCX"])
        # Every worker holds the state, pinned to the CPU with torch threads = its nthreads (1).
        state = client.run(_worker_state, evaluator.plugin_name)
    assert sorted(state.values()) == [("cpu", 1, BATCH), ("cpu", 1, BATCH)]
    assert all(evaluator.plugin_name not in names for names in client.run(_plugin_names).values())


def test_workers_refuse_a_config_they_cannot_score(setting, cluster):
    space, config, images, _ = setting
    _, client = cluster
    with pytest.raises(ConfigError, match="not registered on dask worker"):
        DaskEvaluator(client, space, images, replace(config, heuristics=("ntk", "no_such_heuristic")), labels=LABELS)
    assert all(not any(n.startswith("fne-state") for n in names) for names in client.run(_plugin_names).values())


def _worker_state(plugin_name: str, dask_worker) -> tuple[str, int, int]:
    plugin = dask_worker.plugins[plugin_name]
    return plugin.device, torch.get_num_threads(), len(plugin.images)


def _plugin_names(dask_worker) -> list[str]:
    return list(dask_worker.plugins)


def test_make_evaluator_local_cluster_matches_in_process(setting):
    _, config, _, genotypes = setting
    options = {"C": C, "layers": LAYERS}
    with closing(make_evaluator("nb201", options, DataSpec(), config)) as in_process:
        assert isinstance(in_process, InProcessEvaluator)
        expected = in_process.evaluate(genotypes[:4])
    with closing(make_evaluator("nb201", options, DataSpec(), config, workers=2)) as evaluator:
        assert isinstance(evaluator, DaskEvaluator) and isinstance(evaluator, Evaluator)
        assert_same_rows(evaluator.evaluate(genotypes[:4]), expected)
        cluster = evaluator.cluster
    assert cluster.status.name == "closed"


def test_a_worker_dying_mid_evaluation_loses_nothing(setting, reference, cluster, tmp_path):
    space, config, images, genotypes = setting
    local, client = cluster
    killing = KillingSpace(C=C, layers=LAYERS, once=str(tmp_path / "killed"))
    with DaskEvaluator(client, killing, images, config, labels=LABELS) as evaluator:
        rows = evaluator.evaluate(genotypes)
        assert (tmp_path / "killed").exists()  # a worker process did die
        assert_same_rows(rows, reference)
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it, and the plugin reached it
        assert sorted(client.run(_worker_state, evaluator.plugin_name).values()) == [("cpu", 1, BATCH)] * 2


def test_a_candidate_that_keeps_killing_workers_scores_inf(setting, reference, cluster):
    space, config, images, genotypes = setting
    local, client = cluster
    poison = genotypes[2]
    local.scheduler.allowed_failures = 0  # KilledWorker on the first death, to keep the test short
    try:
        killing = KillingSpace(C=C, layers=LAYERS, poison=poison)
        with DaskEvaluator(client, killing, images, config, max_attempts=2, labels=LABELS) as evaluator:
            rows = evaluator.evaluate(genotypes[:5])
    finally:
        local.scheduler.allowed_failures = 3
    assert list(rows["genotype"]) == genotypes[:5]
    bad = rows.iloc[2]
    assert np.isinf(bad[list(config.heuristics)].to_numpy(dtype=float)).all()
    assert "KilledWorker" in bad["error"] and "2 submissions" in bad["error"]
    good = [0, 1, 3, 4]
    assert_same_rows(rows.iloc[good], reference.iloc[good])
    assert (bad["params"], bad["flops"]) == (-1, -1)  # as score_genotypes marks a net it could not build
