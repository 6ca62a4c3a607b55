import numpy as np
import pytest

from ortsparse.rewriter.packing import (
    compiled_blocks,
    count_compiled_input_loads,
    count_stored_blocks,
    expected_compiled_input_loads,
    pack,
    scale_output_channels,
    unpack,
)

W = np.array(
    [
        [0, 2, 0, 0, 5],
        [1, 0, 0, 0, 0],
        [0, 3, 0, 4, 6],
    ],
    dtype=np.float32,
)


def test_csr_groups_each_output_channel_by_increasing_input_index():
    packed = pack(W, "csr")
    np.testing.assert_array_equal(packed.group_offsets, [0, 1, 3, 3, 4, 6])
    np.testing.assert_array_equal(packed.input_indices, [1, 0, 2, 2, 0, 2])
    np.testing.assert_array_equal(packed.values, [1, 2, 3, 4, 5, 6])
    assert (
        packed.values.dtype == np.float32
        and packed.group_offsets.dtype == packed.input_indices.dtype == np.int32
    )


def test_block4_stores_four_channel_blocks_with_zero_padding_past_n():
    packed = pack(W, "block4")
    # group 0 = channels 0..3: rows 0, 1, 2 all have a nonzero; group 1 = channel 4 (+3 padding).
    np.testing.assert_array_equal(packed.group_offsets, [0, 3, 5])
    np.testing.assert_array_equal(packed.input_indices, [0, 1, 2, 0, 2])
    np.testing.assert_array_equal(
        packed.values.reshape(-1, 4),
        [[0, 2, 0, 0], [1, 0, 0, 0], [0, 3, 0, 4], [5, 0, 0, 0], [6, 0, 0, 0]],
    )


@pytest.mark.parametrize("format", ["csr", "block4"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (64, 33), (16, 8)])
def test_unpack_inverts_pack(format, shape):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal(shape).astype(np.float32) * (rng.random(shape) < 0.3)
    packed = pack(weight, format)
    np.testing.assert_array_equal(unpack(packed), weight)
    assert packed.stored_blocks == count_stored_blocks(weight, format)
    assert packed.group_offsets[0] == 0 and packed.group_offsets[-1] == packed.stored_blocks


def test_all_zero_weight_stores_nothing():
    packed = pack(np.zeros((4, 6), np.float32), "block4")
    assert packed.stored_blocks == 0 and len(packed.values) == 0
    np.testing.assert_array_equal(packed.group_offsets, [0, 0, 0])


@pytest.mark.parametrize("format", ["csr", "block4"])
def test_scaling_output_channels_scales_columns_and_keeps_the_stored_blocks(format):
    factors = np.array([2.0, -1.0, 0.0, 0.5, 3.0])
    packed = pack(W, format)
    scaled = scale_output_channels(packed, factors)
    np.testing.assert_array_equal(unpack(scaled), W * factors.astype(np.float32))
    np.testing.assert_array_equal(scaled.group_offsets, packed.group_offsets)
    np.testing.assert_array_equal(scaled.input_indices, packed.input_indices)
    assert scaled.values.dtype == np.float32


@pytest.mark.parametrize(
    "n,expected",
    [(5, [5]), (28, [28]), (29, [15, 14]), (64, [22, 21, 21]), (255, [26] * 5 + [25] * 5)],
)
def test_compiled_blocks_split_channels_as_the_provider_does(n, expected):
    # provider/kernels/f32-spconv/16x28-avx512-jit.cc: ceil(N / 28) blocks, the first N % blocks
    # of them one channel larger.
    assert compiled_blocks(n) == expected


def test_compiled_input_loads_count_each_input_once_per_block_that_reads_it():
    weight = np.zeros((4, 29), dtype=np.float32)  # blocks of channels 0-14 and 15-28
    weight[0, [0, 1, 20]] = 1  # read by both blocks: two loads
    weight[1, 14] = 1  # first block only
    weight[2, 15] = 1  # second block only
    # row 3 is read by no channel: no load
    assert count_compiled_input_loads(weight) == 4


def test_expected_compiled_input_loads_match_random_weights():
    rng = np.random.default_rng(0)
    k, n = 300, 64
    for density in (0.05, 0.2, 1.0):
        weight = (rng.random((k, n)) < density).astype(np.float32)
        expected = expected_compiled_input_loads(k, n, density)
        assert count_compiled_input_loads(weight) == pytest.approx(expected, rel=0.05)
    assert expected_compiled_input_loads(k, n, 0.0) == 0
    assert expected_compiled_input_loads(k, n, 1.0) == k * 3
