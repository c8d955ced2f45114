"""NAS-Bench-201 space: arch-string grammar, compact genotypes, sampling and the exact TinyNetwork."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.nb201 import (
    NB201_OPS,
    NB201Genotype,
    NB201Space,
    from_arch_str,
    parse_arch_str,
    parse_compact,
    to_arch_str,
)
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import get_space
from tests.shared_data import NB201_TABLE, require

NB201_CSV = NB201_TABLE

# The benchmark's best CIFAR-10 cell (arch-index 9930, 94.36% test accuracy).
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CODES = "nkcCa"

# Hand-written pairs (independent of the formatter): compact <-> official.
PAIRS = [
    ("C+CC+kCC", BEST),
    ("C+Ca+kCk", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"),
    ("a+ck+ckk", "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"),
    ("n+nn+nnn", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
    ("k+nC+aCC", "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"),
    ("c+an+kac", "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_1x1~2|"),
]

compact_strings = st.lists(st.sampled_from(CODES), min_size=6, max_size=6).map(
    lambda c: f"{c[0]}+{c[1]}{c[2]}+{c[3]}{c[4]}{c[5]}")


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return get_space("nb201")


# --- grammar -------------------------------------------------------------------------------------------


def test_space_is_registered_with_its_ops_and_size(space):
    assert isinstance(space, NB201Space)
    assert (space.C, space.layers) == (16, 5)
    assert NB201_OPS.names == OPS
    assert NB201_OPS.codes == CODES
    assert space.alphabets() == [CODES, "+", CODES, CODES, "+", CODES, CODES, CODES]
    assert space.size() == 15_625 == 5**6


@pytest.mark.parametrize("compact, official", PAIRS)
def test_compact_and_official_strings_convert_both_ways(space, compact, official):
    assert from_arch_str(official) == compact
    assert to_arch_str(compact) == official
    assert space.parse(official) == space.parse(compact)
    assert space.format(space.parse(official)) == compact
    assert space.canonical(official) == compact
    genotype = parse_compact(compact)
    assert genotype.to_arch_str() == official
    assert NB201Genotype.from_arch_str(official).to_compact() == compact


def test_best_cell_ops_follow_the_official_edge_order():
    assert parse_compact("C+CC+kCC").ops == ("nor_conv_3x3",) * 3 + ("skip_connect",) + ("nor_conv_3x3",) * 2
    # Edge 1->3 differs from edge 0->3: the positions are not interchangeable.
    assert parse_compact("n+nn+nkn").to_arch_str() == "|none~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"


def test_all_genotypes_enumerates_every_cell_once_and_round_trips(space):
    genotypes = list(space.all_genotypes())
    assert len(genotypes) == len(set(genotypes)) == 15_625
    for text in genotypes:
        assert space.format(space.parse(text)) == text
        assert from_arch_str(to_arch_str(text)) == text


def test_every_official_arch_string_parses_and_re_emits_identically(space):
    with require(NB201_CSV).open(newline="") as handle:
        archs = [row["arch_str"] for row in csv.DictReader(handle)]
    assert len(archs) == 15_625
    compacts = set()
    for arch in archs:
        compact = from_arch_str(arch)
        assert to_arch_str(compact) == arch
        compacts.add(compact)
    assert compacts == set(space.all_genotypes())


@settings(max_examples=200, deadline=None)
@given(compact_strings, compact_strings, st.lists(st.booleans(), min_size=8, max_size=8))
def test_charwise_mix_of_two_valid_strings_parses(space, a, b, take_a):
    mix = "".join(x if pick else y for x, y, pick in zip(a, b, take_a, strict=True))
    genotype = space.parse(mix)
    assert space.format(genotype) == mix
    expected = tuple(NB201_OPS.name_of(c) for c in mix if c != "+")
    assert genotype.ops == expected


@settings(max_examples=100, deadline=None)
@given(compact_strings)
def test_official_form_parses_to_the_same_genotype(space, compact):
    assert space.parse(to_arch_str(compact)) == space.parse(compact)


@pytest.mark.parametrize("text, fragment", [
    ("C+CC+kCx", "position 7 (op of edge 2->3) is 'x'"),
    ("1+CC+kCC", "position 0 (op of edge 0->1) is '1'"),
    ("C-CC+kCC", "position 1 (the '+' before node 2) is '-'"),
    ("C+CC+kC", "length 7, expected 8"),
    ("C+CC+kCCC", "length 9, expected 8"),
    ("", "length 0, expected 8"),
])
def test_bad_compact_strings_name_the_position(space, text, fragment):
    with pytest.raises(GenotypeError, match="NB201 genotype") as err:
        space.parse(text)
    assert fragment in str(err.value)


@pytest.mark.parametrize("arch, fragment", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "expected 3 nodes"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 2 ('|nor_conv_3x3~0|conv_3x3~1|') edge 1->2: unknown op 'conv_3x3'"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "edge 0: input '1', expected 0"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 2 ('|nor_conv_3x3~0|') has 1 edges, expected 2"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 1 ('|nor_conv_3x3|') edge 0: 'nor_conv_3x3' is not 'op~input'"),
    ("nor_conv_3x3~0+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 1 ('nor_conv_3x3~0') must start and end with '|'"),
    ("|max_pool_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'max_pool_3x3'"),
])
def test_bad_official_strings_name_the_node_and_edge(space, arch, fragment):
    with pytest.raises(GenotypeError, match="bad NB201 arch string") as err:
        space.parse(arch)
    assert fragment in str(err.value)


def test_bad_genotype_objects_are_refused():
    with pytest.raises(GenotypeError, match="tuple of 6 op names"):
        NB201Genotype(("none",) * 5)
    with pytest.raises(GenotypeError, match="tuple of 6 op names"):
        NB201Genotype(["none"] * 6)  # type: ignore[arg-type]
    with pytest.raises(GenotypeError, match="edge 1->3: unknown op 'sep_conv_3x3'"):
        NB201Genotype(("none",) * 4 + ("sep_conv_3x3", "none"))
    with pytest.raises(GenotypeError, match="must be a string"):
        parse_compact(12345678)  # type: ignore[arg-type]
    with pytest.raises(GenotypeError, match="must be a string"):
        parse_arch_str(None)  # type: ignore[arg-type]


def test_bad_space_options_are_refused():
    with pytest.raises(ConfigError, match="must be positive"):
        get_space("nb201", C=0)


# --- sampling ------------------------------------------------------------------------------------------


def test_sample_is_seeded_and_uniform_over_each_edge(space):
    first = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    assert first == [space.sample(np.random.default_rng(5)) for _ in range(3)]
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(5000)]
    assert all(space.format(space.parse(s)) == s for s in samples)
    for position in (0, 2, 3, 5, 6, 7):
        counts = Counter(s[position] for s in samples)
        assert set(counts) == set(CODES)
        # Binomial(5000, 1/5): sd ~28, so 5 sd either side of 1000.
        assert all(860 < counts[c] < 1140 for c in CODES), counts
    assert len(set(samples)) > 4000  # 5000 draws from 15,625 cells rarely repeat


# --- phenotype -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(CODES))
def test_every_op_builds_and_runs_forward_and_backward(space, code):
    compact = f"{code}+{code}{code}+{code}{code}{code}"
    net = space.build(compact, C=4, layers=1, seed=0)
    assert len(net.cells) == 5  # one cell a stage and two ResNet blocks
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    logits = net(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    # All-`none` cells cut every path from the input, so only then is the input gradient zero.
    assert (x.grad.abs().sum() > 0) == (code != "n")
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_mixed_cells_and_official_strings_build_the_same_network(space):
    rng = np.random.default_rng(1)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        compact = space.sample(rng)
        a = space.build(compact, C=4, layers=1, seed=3)
        b = space.build(to_arch_str(compact), C=4, layers=1, seed=3)
        assert torch.equal(a(x), b(x))


def test_all_none_cell_outputs_the_classifier_bias(space):
    # Every cell outputs zeros, BN of zeros is zero (beta = 0 at init), so the logits are the linear bias.
    net = space.build("n+nn+nnn", C=4, layers=1, seed=0)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for mode in (True, False):
        net.train(mode)
        logits = net(x)
        assert torch.isfinite(logits).all()
        assert torch.allclose(logits, net.classifier.bias.detach().expand(3, 10))


def test_seed_fixes_init_without_touching_global_rng(space):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = space.build("C+CC+kCC", C=4, layers=1, seed=9)
    assert torch.equal(torch.rand(1), expected)
    b = space.build("C+CC+kCC", C=4, layers=1, seed=9)
    c = space.build("C+CC+kCC", C=4, layers=1, seed=10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


def test_width_depth_and_classes_overrides(space):
    net = space.build("c+Ca+kCk", C=6, layers=2, num_classes=7)
    assert len(net.cells) == 3 * 2 + 2
    assert (net.classifier.in_features, net.classifier.out_features) == (24, 7)
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    with pytest.raises(ConfigError):
        space.build("c+Ca+kCk", C=0)


def test_state_dict_keys_follow_the_reference_tiny_network(space):
    keys = set(space.build("C+ck+aCn", C=4, layers=1).state_dict())
    # xautodl TinyNetwork: stem, cells[i].layers[j].op (ReLUConvBN), ResNetBasicblock conv_a/conv_b/downsample.
    for key in ("stem.0.weight", "stem.1.running_var", "cells.0.layers.0.op.1.weight", "cells.0.layers.1.op.2.bias",
                "cells.1.conv_a.op.1.weight", "cells.1.conv_b.op.2.weight", "cells.1.downsample.1.weight",
                "cells.3.downsample.1.weight", "lastact.0.weight", "classifier.weight", "classifier.bias"):
        assert key in keys, key
    assert not any(k.startswith("cells.0.layers.2.") for k in keys)  # skip_connect has no parameters


def _expected_params(compact: str, C: int, N: int, num_classes: int = 10) -> int:
    """Closed-form count: stem, cells (conv = k*k*w*w + BN 2w), two ResNet blocks, last BN, classifier."""
    n3, n1 = compact.count("C"), compact.count("c")
    total = 3 * 9 * C + 2 * C
    for w in (C, 2 * C, 4 * C):
        total += N * (n3 * (9 * w * w + 2 * w) + n1 * (w * w + 2 * w))
    for c_in, c_out in ((C, 2 * C), (2 * C, 4 * C)):
        total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
    return total + 2 * 4 * C + 4 * C * num_classes + num_classes


def test_parameter_count_matches_closed_form_at_small_sizes(space):
    rng = np.random.default_rng(4)
    for compact in ["C+CC+kCC", "n+nn+nnn", "c+cc+ccc"] + [space.sample(rng) for _ in range(4)]:
        for C, N in ((4, 1), (6, 2)):
            assert count_parameters(space.build(compact, C=C, layers=N)) == _expected_params(compact, C, N), compact


# Published NB201 CIFAR-10 costs (API get_cost_info(i, 'cifar10')['params'] in millions, 'flops' in
# millions of multiply-adds):
# - arch-index 9930 (BEST): "cifar10 FLOP=184.73 M, Params=1.289 MB" -- NB201 API query_info_str log quoted
#   in a public genotypes.py next to AutoDL's CellArchitectures (found with find_string "arch-index=9930").
# - all nor_conv_3x3 (largest) 1.531546 and all none/skip (smallest) 0.073306 params, FLOPs 220.11969 and
#   7.78305: min/max over the NAS-Bench-201-v1_1-096897 cifar10 records (HPOBench-data script and EvoXBench
#   nb201 min_max_values 'params': [0.073306, 1.531546], 'flops': [7.78305, 220.11969]).
# - 3 x nor_conv_3x3 cells such as arch-index 1: params 0.802426, flops 113.95137 (D-X-Y/NATS-Bench issue #36,
#   get_cost_info(idx, 'cifar10', hp='12'); also "Params=0.802 MB, FLOP=113.95 M" in NATS-Bench issue #18).
# NB201 counts the classifier's bias additions as FLOPs; fne's count_flops (2 per multiply-add) does not.
PUBLISHED = [
    ("C+CC+kCC", 1.289, 184.73, 3),
    ("C+CC+CCC", 1.531546, 220.11969, 6),
    ("n+nn+nnn", 0.073306, 7.78305, 6),
    ("k+kk+kkk", 0.073306, 7.78305, 6),
    ("C+Ca+kCk", 0.802426, 113.95137, 6),
    ("k+nC+aCC", 0.802426, 113.95137, 6),
]


@pytest.mark.parametrize("compact, params_m, flops_m, digits", PUBLISHED)
def test_full_size_network_matches_published_nb201_params(space, compact, params_m, flops_m, digits):
    net = space.build(compact)  # C=16, N=5, 10 classes
    assert round(count_parameters(net) / 1e6, digits) == params_m


@pytest.mark.parametrize("compact, params_m, flops_m, digits", PUBLISHED[:3] + PUBLISHED[4:5])
def test_full_size_network_matches_published_nb201_flops(space, compact, params_m, flops_m, digits):
    multiply_adds = count_flops(space.build(compact)) / 2 + 10  # + the classifier's bias additions
    assert round(multiply_adds / 1e6, 2 if digits == 3 else 5) == flops_m


def test_best_cell_exact_parameter_count(space):
    # 1,288,506 parameters = NB201's 1.289 MB (rounded) for arch-index 9930; closed form agrees.
    assert count_parameters(space.build(BEST)) == 1_288_506 == _expected_params("C+CC+kCC", 16, 5)


def test_matches_reference_xautodl_tiny_network_when_installed(space):
    xautodl = pytest.importorskip("xautodl.models.cell_infers.tiny_network")
    genotypes = pytest.importorskip("xautodl.models.cell_searchs.genotypes")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for compact in ("C+CC+kCC", "a+ck+ckk", "n+nn+aCa"):
        ours = space.build(compact, C=8, layers=2, seed=1)
        torch.manual_seed(1)
        ref = xautodl.TinyNetwork(8, 2, genotypes.Structure.str2structure(to_arch_str(compact)), 10)
        for key, value in ours.state_dict().items():
            assert torch.equal(value, ref.state_dict()[key]), key  # same init order, same keys
        for mode in (True, False):
            ours.train(mode)
            ref.train(mode)
            assert torch.allclose(ours(x), ref(x)[1], atol=1e-6)
