"""Genotype grammar: round trips, property tests on char-wise mixes, DARTS conversions and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fne.errors import GenotypeError
from fne.genotopheno.genotype import (
    PUBLISHED,
    Cell,
    Edge,
    Genotype,
    GenotypeShape,
    alphabets,
    format_genotype,
    from_darts,
    parse,
    published,
    to_darts,
)
from fne.genotopheno.ops import DARTS_OPS

DARTS_V2 = "s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|1.1.1"


@st.composite
def genotype_strings(draw, shape=GenotypeShape()):
    """Any string of the grammar: one allowed character per position."""
    return "".join(draw(st.sampled_from(alphabet)) for alphabet in alphabets(shape))


def test_darts_v2_string_is_the_documented_example():
    assert str(published("DARTS_V2")) == DARTS_V2
    assert parse(DARTS_V2) == published("DARTS_V2")


def test_every_published_cell_round_trips_through_both_forms():
    for name, darts in PUBLISHED.items():
        genotype = published(name)
        assert parse(str(genotype)) == genotype, name
        back = to_darts(genotype)
        assert back.normal == darts.normal and back.reduce == darts.reduce, name
        assert back.normal_concat == [2, 3, 4, 5]


def test_parsed_fields_are_what_the_string_says():
    g = parse("a0D1-n2k0-s3S1-d4m0|k1k0-m2a1-s0s3-D4d2|24.48.96|2.3.1")
    assert g.normal.nodes[0] == (Edge("avg_pool_3x3", 0), Edge("dil_conv_5x5", 1))
    assert g.normal.nodes[1] == (Edge("none", 2), Edge("skip_connect", 0))
    assert g.reduce.nodes[3] == (Edge("dil_conv_5x5", 4), Edge("dil_conv_3x3", 2))
    assert g.widths == (24, 48, 96)
    assert g.cells_per_stage == (2, 3, 1)


@settings(max_examples=200, deadline=None)
@given(genotype_strings())
def test_every_grammar_string_round_trips(text):
    assert format_genotype(parse(text)) == text


@settings(max_examples=200, deadline=None)
@given(genotype_strings(), genotype_strings(), st.randoms(use_true_random=False))
def test_charwise_uniform_crossover_of_valid_strings_is_valid(a, b, rnd):
    child = "".join(x if rnd.random() < 0.5 else y for x, y in zip(a, b))
    assert format_genotype(parse(child)) == child


@settings(max_examples=100, deadline=None)
@given(genotype_strings(GenotypeShape(nodes=2, stages=4)), st.data())
def test_point_mutation_within_position_alphabet_is_valid(text, data):
    position = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(alphabets(GenotypeShape(2, 4))[position]))
    mutated = text[:position] + char + text[position + 1:]
    assert str(parse(mutated)) == mutated


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (DARTS_V2[:-2], "length 52, expected 54"),
        (DARTS_V2.replace("k0d2|", "k0d5|"), "position 18 (normal cell node 3 edge 1 input"),
        ("s0s2" + DARTS_V2[4:], "position 3 (normal cell node 0 edge 1 input"),
        ("X0" + DARTS_V2[2:], "position 0 (normal cell node 0 edge 0 op) is 'X'"),
        (DARTS_V2.replace("16.", "06."), "stage 0 width, tens digit"),
        (DARTS_V2[:-1] + "0", "stage 2 normal-cell count"),
        ("s0s1", "expected 4 sections"),
        (DARTS_V2.replace("-", "+", 1), "position 4 (the '-' after normal cell node 0) is '+'"),
    ],
)
def test_malformed_strings_name_the_position_and_problem(text, fragment):
    with pytest.raises(GenotypeError) as error:
        parse(text)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_non_string_is_rejected_clearly():
    with pytest.raises(GenotypeError, match="must be a string"):
        parse(123)


def test_dataclass_validation_rejects_forward_inputs_and_bad_widths():
    cell = Cell(((Edge("sep_conv_3x3", 0), Edge("skip_connect", 1)),))
    with pytest.raises(GenotypeError, match="input 2 must be in 0..1"):
        Genotype(Cell(((Edge("sep_conv_3x3", 2), Edge("skip_connect", 1)),)), cell, (16,), (1,))
    with pytest.raises(GenotypeError, match="width 100"):
        Genotype(cell, cell, (100,), (1,))
    with pytest.raises(GenotypeError, match="unknown op 'conv_7x7'"):
        Genotype(Cell(((Edge("conv_7x7", 0), Edge("skip_connect", 1)),)), cell, (16,), (1,))


def test_from_darts_rejects_partial_concat_and_odd_edges():
    darts = PUBLISHED["DARTS_V2"]._replace(normal_concat=[2, 3])
    with pytest.raises(GenotypeError, match="normal_concat"):
        from_darts(darts)
    with pytest.raises(GenotypeError, match="two per node"):
        from_darts(darts._replace(normal=darts.normal[:3], normal_concat=[2, 3, 4, 5]))
    with pytest.raises(GenotypeError, match="unknown published genotype"):
        published("NOPE")


def test_user_registered_op_extends_the_alphabet():
    from torch import nn

    @DARTS_OPS.register("conv_1x1_test", "c")
    def _conv(C, stride, affine):
        return nn.Conv2d(C, C, 1, stride=stride, bias=False)

    try:
        text = DARTS_V2.replace("s0s1-s0s1", "c0s1-s0c1")
        assert str(parse(text)) == text
        assert "c" in alphabets()[0]
        with pytest.raises(ValueError, match="already"):
            DARTS_OPS.register("other", "c")(_conv)
    finally:
        DARTS_OPS.unregister("conv_1x1_test")
    with pytest.raises(GenotypeError):
        parse(text)


def test_alphabets_count_positions_consistently():
    rng = np.random.default_rng(0)
    for nodes, stages in [(1, 1), (4, 3), (8, 2)]:
        alph = alphabets(GenotypeShape(nodes, stages))
        text = "".join(a[rng.integers(len(a))] for a in alph)
        assert len(text) == len(alph)
        assert str(parse(text)) == text
