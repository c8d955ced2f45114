"""The predictor decomposes a genotype's own network exactly into the table's parts (checked by counting)."""

from __future__ import annotations

import pytest
import torch

from fne.deploy.latency_model import LatencyPredictor, layout_of, network_part, reference_genotypes, space_parts
from fne.deploy.latency_parts import INPUT_WIDTH_GRID, WIDTH_GRID, Part
from fne.errors import ConfigError, DeployError
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import get_space
from tests.deploy.fake_tables import counting_table

# Widths on the grid (16, 32, 64; inputs 48, 64, 128, 256), so every part is measured, not interpolated.
DARTS_CELLS = ["s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|1.1.1",  # DARTS_V2
               "D0n1-a2k0-S1m3-d4s2|k0S1-n2a1-d0m2-s3k4|16.32.64|2.1.3"]
NB201_CELLS = ["C+CC+kCC", "n+nn+nnn", "a+ck+cna"]


@pytest.mark.parametrize("what", ["params", "flops"])
@pytest.mark.parametrize("space_name, genotypes", [("darts", DARTS_CELLS), ("nb201", NB201_CELLS)])
def test_prediction_sums_the_networks_own_parts(space_name, genotypes, what):
    space = get_space(space_name)
    predictor = LatencyPredictor(counting_table(space, what), space, image_size=32)
    for genotype in genotypes:
        network = space.build(genotype, seed=0).eval()
        expected = count_parameters(network) if what == "params" else count_flops(network, (1, 3, 32, 32))
        assert predictor.predict_ms(genotype) == pytest.approx(expected, rel=1e-9), genotype


def test_darts_widths_between_grid_points_interpolate_linearly():
    space = get_space("darts")
    table = counting_table(space, "params")
    low, high = (Part("darts/op/sep_conv_3x3", 16, C, stride=1) for C in (16, 24))
    middle = Part("darts/op/sep_conv_3x3", 16, 20, stride=1)
    assert table.lookup(middle) == pytest.approx((table.lookup(low) + table.lookup(high)) / 2)
    corner = [table.lookup(Part("darts/preprocess", 32, C, C_in)) for C_in in (48, 64) for C in (16, 24)]
    assert table.lookup(Part("darts/preprocess", 32, 20, 56)) == pytest.approx(sum(corner) / 4)
    predictor = LatencyPredictor(table, space, 32)
    off_grid = predictor.predict_ms(DARTS_CELLS[0].replace("16.32.64", "20.37.71"))
    assert predictor.predict_ms(DARTS_CELLS[0]) < off_grid < predictor.predict_ms(
        DARTS_CELLS[0].replace("16.32.64", "24.48.80"))


def test_the_grids_cover_every_width_a_darts_search_can_produce():
    assert WIDTH_GRID[0] <= 10 and WIDTH_GRID[-1] >= 99  # the grammar's widths
    assert INPUT_WIDTH_GRID[0] <= 3 * 10 and INPUT_WIDTH_GRID[-1] >= 4 * 99  # the stem's 3 w0, a cell's 4 w
    space = get_space("darts")
    table = counting_table(space, "params")
    for widths in ("10.10.10", "99.99.99", "10.99.10"):
        assert LatencyPredictor(table, space, 32).predict_ms(DARTS_CELLS[0].replace("16.32.64", widths)) > 0


def test_a_part_outside_the_table_is_refused_in_one_line():
    space = get_space("nb201")
    table = counting_table(space, "params")
    with pytest.raises(DeployError, match="no nb201/stem at 64x64.*fne latency-table"):
        LatencyPredictor(table, space, image_size=64).predict_ms("C+CC+kCC")
    with pytest.raises(DeployError, match="outside the latency table's measured C"):
        table.lookup(Part("nb201/op/nor_conv_3x3", 32, 20))


def test_parts_cover_both_image_sizes_once_and_every_module_runs():
    space = get_space("darts")
    parts, layout = space_parts(space, (32, 16)), layout_of(space)
    assert len(parts) == len(set(parts))  # the 16x16 and 8x8 parts of both sizes are measured once
    assert {p for p in parts if "/network/" not in p.kind} == set(layout.parts(space, 32)) | set(
        layout.parts(space, 16))
    space = get_space("nb201")
    for part in layout_of(space).parts(space, 32)[:5]:
        module, shapes = layout_of(space).module(part)
        assert torch.isfinite(module.eval()(*(torch.randn(*s) for s in shapes))).all()
    with pytest.raises(ConfigError, match="no latency layout"):
        layout_of(type("Other", (), {"name": "other"})())


def test_reference_networks_calibrate_the_sum_of_parts():
    space = get_space("darts")
    table = counting_table(space, "params")
    plain = LatencyPredictor(table, space, 32)
    assert plain.scale == 1.0  # no reference networks: the sum of parts as it is
    references = reference_genotypes(space)
    assert len(set(references)) == len(references) == 10 and references == reference_genotypes(space)
    assert len({space.stage_widths(g) for g in references}) == 10  # random widths, not the space's 16.32.64
    for factor, genotype in zip((1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0), references):
        table.add(network_part(space, genotype, 32), factor * plain.sum_of_parts_ms(genotype))
    calibrated = LatencyPredictor(table, space, 32)
    assert calibrated.scale == pytest.approx(1.55)  # the median of measured / summed
    assert calibrated.predict_ms(DARTS_CELLS[1]) == pytest.approx(1.55 * plain.predict_ms(DARTS_CELLS[1]))
    assert network_part(space, references[0], 32) in space_parts(space, (32,))
