import onnx
from onnx import TensorProto, helper

from ortsparse.rewriter.contrib_shapes import contrib_output_types
from ortsparse.rewriter.graph import Graph
from tests.rewriter_testing import make_model, sparse_weight

FLOAT = TensorProto.FLOAT


def ms_node(op_type, inputs, outputs, **attributes):
    return helper.make_node(op_type, inputs, outputs, domain="com.microsoft", **attributes)


def types(**shapes):
    known = {
        name: helper.make_tensor_type_proto(elem_type, shape)
        for name, (elem_type, shape) in shapes.items()
    }
    return known.get


def dims(value_type):
    return [
        dim.dim_value if dim.HasField("dim_value") else dim.dim_param
        for dim in value_type.tensor_type.shape.dim
    ]


def test_elementwise_and_normalizing_ops_keep_their_input_type():
    nodes = [
        ms_node("Gelu", ["x"], ["g"]),
        ms_node("FastGelu", ["g", "bias"], ["f"]),
        ms_node("SkipLayerNormalization", ["f", "skip", "gamma"], ["y", "", "", "sum"]),
    ]
    found = contrib_output_types(nodes, types(x=(FLOAT, ["b", "s", 8])))
    assert set(found) == {"g", "f", "y", "sum"}
    assert all(dims(found[name]) == ["b", "s", 8] for name in found)


def test_attention_output_is_batch_sequence_and_value_hidden_size():
    fused_weights = types(x=(FLOAT, ["b", "s", 64]), w=(FLOAT, [64, 192]))
    (attention,) = contrib_output_types(
        [ms_node("Attention", ["x", "w"], ["y"], num_heads=4)], fused_weights
    ).values()
    assert dims(attention) == ["b", "s", 64]
    sized = contrib_output_types(
        [ms_node("Attention", ["x", "w"], ["y"], num_heads=4, qkv_hidden_sizes=[64, 64, 32])],
        fused_weights,
    )
    assert dims(sized["y"]) == ["b", "s", 32]
    separate = types(
        q=(FLOAT, ["b", "s", 64]), k=(FLOAT, ["b", "l", 64]), v=(FLOAT, ["b", "l", 48])
    )
    found = contrib_output_types([ms_node("MultiHeadAttention", ["q", "k", "v"], ["y"])], separate)
    assert dims(found["y"]) == ["b", "s", 48]


def test_embed_layer_normalization_gives_embeddings_and_a_mask_index():
    known = types(ids=(TensorProto.INT32, ["b", "s"]), words=(FLOAT, [1000, 32]))
    node = ms_node("EmbedLayerNormalization", ["ids", "", "words"], ["embedded", "mask"])
    found = contrib_output_types([node], known)
    assert dims(found["embedded"]) == ["b", "s", 32]
    assert found["mask"].tensor_type.elem_type == TensorProto.INT32 and dims(found["mask"]) == ["b"]


def test_unknown_ops_and_unknown_inputs_are_left_unknown():
    nodes = [ms_node("NoSuchOp", ["x"], ["y"]), ms_node("Gelu", ["unknown"], ["z"])]
    assert contrib_output_types(nodes, types(x=(FLOAT, [4]))) == {}


def test_the_graph_infers_through_contrib_ops_to_the_matmul_after_them():
    model = make_model(
        [
            ms_node("Gelu", ["A"], ["g"]),
            helper.make_node("MatMul", ["g", "W"], ["Y"]),
        ],
        {"A": ["b", "s", 16]},
        {"Y": ["b", "s", 8]},
        {"W": sparse_weight(16, 8)},
    )
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    value_info = list(model.graph.value_info)
    graph = Graph(model)
    assert graph.shape("g") == ("b", "s", 16)
    assert graph.shape("Y") == ("b", "s", 8)
    # The hints given to ONNX's inference are not left in the model.
    assert list(model.graph.value_info) == value_info
    onnx.checker.check_model(model)
