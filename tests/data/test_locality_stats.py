"""The published locality-statistics format: parse, write back byte-identically, average, errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from ecorec.data.errors import DataFormatError
from ecorec.data.locality_stats import (
    DEFAULT_EDGES,
    LocalityAccumulator,
    LocalityStats,
    format_locality_stats,
    parse_locality_stats,
    read_locality_stats,
    total_variation,
    write_locality_stats,
)
from ecorec.data.sources import default_locality_stats_path

PACKAGED = default_locality_stats_path()


def test_packaged_file_parses_to_its_published_values():
    stats = read_locality_stats(PACKAGED)
    assert len(stats.blocks) == 16
    first = stats.blocks[0]
    # Values read off the file by eye.
    assert first.source == "fbgemm_t788_bs131072_0.pt"
    assert (first.num_batches, first.batch_size) == (1, 131072)
    assert first.avg_indices == 1405163864 and first.avg_unique == 110259238 and first.avg_col_size == 12.7
    assert first.edges == DEFAULT_EDGES
    assert first.col_size_hist[:3] == (0.342, 0.144, 0.149) and first.col_size_hist[-1] == 0.0
    assert first.index_ratio[-1] == 0.076
    assert first.col_size_cdf[1] == 0.342 and first.col_size_cdf[-1] == 1.0
    assert first.reference_num_tables == 788


def test_packaged_file_round_trips_byte_identically(tmp_path):
    text = PACKAGED.read_text()
    assert format_locality_stats(parse_locality_stats(text).blocks) == text
    out = tmp_path / "copy.txt"
    write_locality_stats(out, read_locality_stats(PACKAGED).blocks)
    assert out.read_text() == text


def test_mean_over_blocks_matches_the_numbers_in_the_text():
    text = PACKAGED.read_text()
    indices = [int(x) for x in re.findall(r"^Avg # of indices: (\d+)$", text, re.M)]
    unique = [int(x) for x in re.findall(r"^Avg # of unique cols: (\d+)$", text, re.M)]
    mean = read_locality_stats(PACKAGED).mean()
    assert mean.avg_indices == pytest.approx(np.mean(indices), rel=1e-12)
    assert mean.avg_unique == pytest.approx(np.mean(unique), rel=1e-12)
    # The published pooling factor: avg indices / (788 tables * 131072 samples) = 13.6.
    assert mean.mean_pooling() == pytest.approx(np.mean(indices) / (788 * 131072))
    assert round(mean.mean_pooling(), 1) == 13.6
    # Every block prints (0, 1]: 0.342, so does the mean.
    assert mean.col_size_hist[0] == pytest.approx(0.342)


def test_total_variation_hand_values():
    assert total_variation([1, 0], [0, 1]) == 1.0
    assert total_variation([0.5, 0.5], [1, 0]) == 0.5
    assert total_variation([2, 2], [1, 1]) == 0.0  # normalised first
    with pytest.raises(ValueError, match="equal length"):
        total_variation([1, 0], [1, 0, 0])


def test_accumulator_buckets_hand_counts(tmp_path):
    acc = LocalityAccumulator()
    acc.add(np.array([1, 1, 2, 3]))
    acc.end_batch()
    acc.add(np.array([5, 40000]))
    acc.end_batch()
    block = acc.block("hand", batch_size=8)
    hist = np.zeros(17)
    hist[[0, 1, 2, 3, 16]] = [2, 1, 1, 1, 1]
    np.testing.assert_allclose(block.col_size_hist, hist / 6)
    ratio = np.zeros(17)
    ratio[[0, 1, 2, 3, 16]] = [2, 2, 3, 5, 40000]
    np.testing.assert_allclose(block.index_ratio, ratio / 40012)
    assert block.avg_indices == 40012 / 2 and block.avg_unique == 3 and block.num_batches == 2
    # Written and read back, within the 3 printed decimals.
    path = tmp_path / "hand.txt"
    write_locality_stats(path, [block])
    again = read_locality_stats(path).blocks[0]
    np.testing.assert_allclose(again.col_size_hist, block.col_size_hist, atol=5e-4)
    assert again.avg_col_size == round(40012 / 6, 1)


GOOD_BLOCK = """\
hand.pt
Locality stats after processing 2 batches of size 4
Avg # of indices: 10
Avg # of unique cols: 5
Avg col size: 2.0
Histogram of col sizes:
(0, 1]: 0.600
(1, 2]: 0.200
(2+]: 0.200
[0, 1, 2]
['0.000', '0.600', '0.800', '1.000']
Ratio of index distribution at different column sizes:
(0, 1]: 0.300
(1, 2]: 0.200
(2+]: 0.500
[0, 1, 2]
['0.000', '0.300', '0.500', '1.000']
"""


def test_other_edges_and_the_closed_open_bucket_spelling_are_accepted():
    block = parse_locality_stats(GOOD_BLOCK).blocks[0]
    assert block.edges == (0, 1, 2)
    assert block.col_size_hist == (0.6, 0.2, 0.2)
    assert block.reference_num_tables is None
    with pytest.raises(ValueError, match="number of tables"):
        block.mean_pooling()
    assert block.mean_pooling(num_tables=1) == 10 / 4


@pytest.mark.parametrize(
    ("name", "tables"),
    [
        ("fbgemm_t788_bs131072_0.pt", 788),
        ("synthetic_t32_bs4096", 32),
        ("my_t5_data_t12_bs2048 (synthetic, seed 0)", 12),  # the last _t<N>_ is the generator's token
        ("no_count_here.pt", None),
    ],
)
def test_table_count_is_read_from_the_last_token_of_the_name(name, tables):
    block = dataclasses.replace(parse_locality_stats(GOOD_BLOCK).blocks[0], source=name)
    assert block.reference_num_tables == tables
    if tables is not None:
        assert block.mean_pooling() == pytest.approx(block.avg_indices / (tables * block.batch_size))


def test_mean_pooling_of_blocks_with_different_batch_sizes_is_refused():
    first = parse_locality_stats(GOOD_BLOCK).blocks[0]
    second = dataclasses.replace(first, source="x_t2_bs8", batch_size=8)
    mixed = LocalityStats((dataclasses.replace(first, source="x_t2_bs4"), second)).mean()
    assert mixed.batch_size == 0 and mixed.reference_num_tables == 2
    with pytest.raises(ValueError, match="batch_size=0; 0 means blocks of different sizes"):
        mixed.mean_pooling()


@pytest.mark.parametrize(
    ("line_no", "replacement", "problem"),
    [
        (2, "Locality stats after processing two batches of size 4", "Locality stats after processing"),
        (4, "Avg # of unique cols: lots", "Avg # of unique cols"),
        (8, "(1, 3]: 0.200", None),  # edges then disagree with the list line
        (8, "(2, 3]: 0.200", "contiguous"),
        (7, "(0, 1]: 0.900", "sum to"),
        (10, "[0, 1, 4]", "edge list"),
        (11, "['0.000', '0.600']", "CDF list"),
        (12, "Ratio of something else:", "Ratio of index distribution"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path, line_no, replacement, problem):
    lines = GOOD_BLOCK.splitlines()
    lines[line_no - 1] = replacement
    path = tmp_path / "bad_stats.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_locality_stats(path)
    message = str(err.value)
    assert message.startswith(f"{path}:")
    reported_line = int(message.split(":")[1])
    assert abs(reported_line - line_no) <= 3  # sums are reported at the histogram header
    if problem:
        assert problem in message


def test_truncated_and_empty_files(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_text("\n".join(GOOD_BLOCK.splitlines()[:9]) + "\n")
    with pytest.raises(DataFormatError, match=rf"{path}:10: expected the list of bucket edges"):
        read_locality_stats(path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match=rf"{empty}:1: no locality-stats block"):
        read_locality_stats(empty)
