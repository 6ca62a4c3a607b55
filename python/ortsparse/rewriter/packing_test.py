import numpy as np
import pytest

from ortsparse.rewriter.packing import count_stored_blocks, pack, scale_output_channels, unpack

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
