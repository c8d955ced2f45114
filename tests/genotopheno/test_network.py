"""Phenotypes: every op builds and trains a step, published sizes match, layouts, seeds, the DARTS space."""

import math

import numpy as np
import pytest
import torch

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.genotype import Cell, Edge, Genotype, parse, published
from fne.genotopheno.network import build_network, count_flops, count_parameters, stage_layout
from fne.genotopheno.ops import DARTS_OPS
from fne.genotopheno.spaces import DartsSpace, get_space


def single_op_genotype(op: str, width: int = 10) -> Genotype:
    """Both cells use `op` on every edge, one node, two stages: the smallest net that exercises the op."""
    cell = Cell(((Edge(op, 0), Edge(op, 1)),))
    return Genotype(cell, cell, (width, width + 2), (1, 1))


@pytest.mark.parametrize("op", DARTS_OPS.names)
def test_every_op_builds_and_runs_forward_backward(op):
    net = build_network(single_op_genotype(op), seed=0)
    x = torch.randn(3, 3, 16, 16)
    out = net(x)
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("op", DARTS_OPS.names)
def test_ops_keep_channels_and_reduce_resolution(op):
    x = torch.randn(2, 6, 8, 8)
    assert DARTS_OPS.build(op, 6, 1)(x).shape == (2, 6, 8, 8)
    assert DARTS_OPS.build(op, 6, 2)(x).shape == (2, 6, 4, 4)


def test_all_none_network_is_legal_and_outputs_only_the_bias():
    net = build_network(single_op_genotype("none"), seed=0).eval()
    out = net(torch.randn(4, 3, 16, 16))
    # Every cell outputs zeros, so the classifier sees zero features: logits equal its bias for every sample.
    assert torch.allclose(out, net.classifier.bias.expand(4, -1))


def test_darts_v2_evaluation_network_has_the_published_parameter_count():
    # DARTS (Liu et al., ICLR 2019), Table 1: DARTS (second order) 3.3M params; the reference code's
    # utils.count_parameters_in_MB prints 3.349342 for NetworkCIFAR(36, 10, 20, True, DARTS_V2), aux excluded.
    net = build_network(published("DARTS_V2"), C=36, layers=20, auxiliary=True)
    assert count_parameters(net) == 3_349_342
    assert count_parameters(net, include_auxiliary=True) > 3_349_342


def test_auxiliary_head_sits_on_the_last_reduction_output():
    net = build_network(published("DARTS_V2"), C=8, layers=8, auxiliary=True, seed=0).train()
    logits, aux = net.forward_with_aux(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    assert net.aux_index == 5  # reductions at 8//3=2 and 16//3=5, as in DARTS
    assert net.eval().forward_with_aux(torch.randn(2, 3, 32, 32))[1] is None


def test_stage_layout_from_genotype_and_from_layers():
    g = parse("s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|2.1.3")
    assert stage_layout(g, None) == [(0, False), (0, False), (1, True), (1, False), (2, True)] + [(2, False)] * 3
    layout = stage_layout(g, 20)
    assert [i for i, (_, red) in enumerate(layout) if red] == [6, 13]
    with pytest.raises(ConfigError, match="too few"):
        stage_layout(g, 4)


def test_widths_scale_with_C_like_darts():
    g = published("DARTS_V2")
    net = build_network(g, C=36, layers=8)
    widths = [cell.preprocess1[1].out_channels for cell in net.cells]
    assert widths == [36, 36, 72, 72, 72, 144, 144, 144]


def test_seed_fixes_initialisation_and_leaves_global_rng_alone():
    g = published("DARTS_V1")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_network(g, seed=7)
    after = torch.rand(1)
    b = build_network(g, seed=7)
    c = build_network(g, seed=8)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_flops_of_a_single_conv_net_match_the_hand_count():
    # A 1x1 conv on 10 channels at 32x32 costs 2*10*10*32*32 flops; pooling and BN are not counted.
    cell = Cell(((Edge("skip_connect", 0), Edge("skip_connect", 1)),))
    g = Genotype(cell, cell, (10,), (1,))
    net = build_network(g, stem_multiplier=1)
    stem = 2 * 3 * 10 * 9 * 32 * 32
    preprocess = 2 * (2 * 10 * 10 * 32 * 32)
    classifier = 2 * 10 * 10
    assert count_flops(net) == stem + preprocess + classifier


def test_darts_space_samples_build_and_count():
    space = get_space("darts")
    assert isinstance(space, DartsSpace)
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(5)]
    assert len(set(samples)) == 5
    for text in samples:
        genotype = space.parse(text)
        assert space.format(genotype) == text
        assert all(e.op != "none" for node in genotype.normal.nodes for e in node)
        assert all(node[0].input != node[1].input for node in genotype.normal.nodes)
    rng2 = np.random.default_rng(0)
    assert [space.sample(rng2) for _ in range(5)] == samples
    net = space.build(samples[0], C=8, seed=0)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # 8 ops; node i has i+2 inputs; two edges a node, two cells; 90 widths and 9 counts per stage.
    per_cell = math.prod((8 * (i + 2)) ** 2 for i in range(4))
    assert space.size() == per_cell**2 * 90**3 * 9**3


def test_darts_space_rejects_other_shapes_and_unknown_spaces():
    space = get_space("darts")
    with pytest.raises(GenotypeError, match="this space has 4 nodes"):
        space.parse("s0s1-s0s1|m0m1-k2m1|16.32.64|1.1.1")
    with pytest.raises(ConfigError, match="unknown search space"):
        get_space("nope")
