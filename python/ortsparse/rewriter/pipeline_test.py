import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import RewriteError, rewrite_model
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    conv_weight,
    make_model,
    matmul_then,
    op_types,
    rewrite,
    sparse_gemms,
    sparse_weight,
)


def mlp(layers=3, width=16):
    """Exporter-style MLP: MatMul -> Add(bias) -> Relu per layer."""
    nodes, constants, x = [], {}, "A"
    for layer in range(layers):
        nodes += [
            helper.make_node(
                "MatMul", [x, f"w{layer}"], [f"mm{layer}"], name=f"/layer{layer}/MatMul"
            ),
            helper.make_node(
                "Add", [f"mm{layer}", f"b{layer}"], [f"add{layer}"], name=f"/layer{layer}/Add"
            ),
            helper.make_node("Relu", [f"add{layer}"], [f"h{layer}"], name=f"/layer{layer}/Relu"),
        ]
        constants[f"w{layer}"] = sparse_weight(width, width, seed=layer)
        constants[f"b{layer}"] = np.full(width, 0.1 * layer, np.float32)
        x = f"h{layer}"
    nodes[-1].output[0] = "Y"
    return make_model(nodes, {"A": ["batch", width]}, {"Y": ["batch", width]}, constants)


def test_mlp_layers_each_become_one_sparse_gemm():
    model = mlp()
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert op_types(result.model) == ["SparseGemm"] * 3
    assert [decision.fused for decision in result.decisions] == [["Add", "Relu"]] * 3
    assert [node.name for node in result.model.graph.node] == [
        f"/layer{i}/MatMul_SparseGemm" for i in range(3)
    ]
    assert {tensor.name for tensor in result.model.graph.initializer}.isdisjoint(
        {"w0", "b0", "w1", "b1", "w2", "b2"}
    )
    assert_same_outputs(model, result.model, {"batch": 5})


def test_input_model_is_not_modified():
    model = mlp()
    before = model.SerializeToString()
    rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert model.SerializeToString() == before


def test_nothing_rewritten_leaves_the_model_as_it_was():
    model = mlp()
    result = rewrite_model(model, min_sparsity=1.0)
    assert result.model.SerializeToString() == model.SerializeToString()
    assert len(result.decisions) == 3 and not any(
        decision.rewritten for decision in result.decisions
    )


def test_names_derive_from_the_node_and_stay_unique():
    nodes = [
        helper.make_node("MatMul", ["A", "w0"], ["h"], name="mm"),
        helper.make_node("Neg", ["h"], ["g"], name="mm_SparseGemm"),
        helper.make_node("MatMul", ["g", "w1"], ["Y"]),  # unnamed: named after its output
    ]
    constants = {f"w{i}": sparse_weight(8, 8, seed=i) for i in range(2)}
    model = make_model(nodes, {"A": ["m", 8]}, {"Y": ["m", 8]}, constants)
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert [node.name for node in result.model.graph.node] == [
        "mm_SparseGemm_1",
        "mm_SparseGemm",
        "Y_SparseGemm",
    ]
    assert [decision.node_name for decision in result.decisions] == ["mm", "Y"]
    assert_same_outputs(model, result.model)


def test_shared_weight_stays_while_a_kept_node_still_reads_it():
    nodes = [
        helper.make_node("MatMul", ["A", "w"], ["Y"], name="matrix"),
        helper.make_node("MatMul", ["v", "w"], ["Z"], name="vector"),
    ]
    constants = {"w": sparse_weight(8, 8), "unused": np.ones(3, np.float32)}
    model = make_model(nodes, {"A": ["m", 8], "v": [8]}, {"Y": ["m", 8], "Z": [8]}, constants)
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert op_types(result.model) == ["SparseGemm", "MatMul"]
    assert {"w", "unused"} <= {tensor.name for tensor in result.model.graph.initializer}
    assert_same_outputs(model, result.model)


def if_model(then_reads):
    """MatMul -> Relu, plus an If whose then-branch reads ``then_reads`` from the outer graph."""
    then_branch = helper.make_graph(
        [
            helper.make_node("MatMul", ["A", "W"], ["inner"], name="inner_matmul"),
            helper.make_node("Identity", [then_reads], ["t"]),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", 1, ["b", 8])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Identity", ["Y"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", 1, ["b", 8])],
    )
    branch = helper.make_node(
        "If", ["cond"], ["Z"], then_branch=then_branch, else_branch=else_branch
    )
    model = matmul_then(
        [helper.make_node("Relu", ["x"], ["Y"]), branch],
        extra_inputs={"cond": []},
        outputs={"Y": ["b", 8], "Z": ["b", 8]},
    )
    model.graph.input[-1].type.tensor_type.elem_type = 9  # bool
    return model


def test_matmul_inside_a_subgraph_is_reported_as_kept():
    result = rewrite_model(if_model(then_reads="Y"), min_sparsity=FORCE_REWRITE)
    assert [(decision.node_name, decision.rewritten) for decision in result.decisions] == [
        ("mm", True),
        ("inner_matmul", False),
    ]
    assert "subgraph" in result.decisions[1].reason


def test_tensor_read_by_a_subgraph_is_not_fused_away():
    model = if_model(then_reads="x")
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert op_types(result.model) == ["SparseGemm", "Relu", "If"]
    initializers = {tensor.name for tensor in result.model.graph.initializer}
    assert "W" in initializers  # the subgraph's MatMul still reads it


def test_progress_reports_each_node():
    lines = []
    rewrite_model(mlp(), min_sparsity=FORCE_REWRITE, progress=lines.append)
    assert any("[3/3] /layer2/MatMul: rewritten" in line for line in lines)


def test_shape_mismatch_is_a_rewrite_error():
    model = make_model(
        [helper.make_node("MatMul", ["A", "w"], ["Y"])],
        {"A": ["m", 10]},
        {"Y": ["m", 8]},
        {"w": sparse_weight(16, 8)},
    )
    with pytest.raises(RewriteError, match="malformed"):
        rewrite_model(model)


def test_node_reading_an_undefined_tensor_is_a_rewrite_error():
    model = mlp(layers=1)
    model.graph.node[1].input[1] = "nowhere"
    with pytest.raises(RewriteError, match="nowhere"):
        rewrite_model(model)


def test_min_sparsity_outside_0_to_1_is_refused():
    with pytest.raises(ValueError, match="min_sparsity"):
        rewrite_model(mlp(), min_sparsity=1.5)


def test_rewritten_model_keeps_its_interface():
    model = mlp()
    rewritten = rewrite(model)
    assert (
        rewritten.graph.input == model.graph.input and rewritten.graph.output == model.graph.output
    )
    assert len(sparse_gemms(rewritten)) == 3


def test_rewritten_model_keeps_its_ir_version_and_opsets():
    # Older ones than the IR 8 and opset 17 of the suite's models, to tell keeping them from
    # writing fixed ones: the rewrite loads wherever the model does.
    model = mlp()
    model.ir_version, model.opset_import[0].version = 7, 13
    rewritten = rewrite(model)
    assert rewritten.ir_version == 7
    opsets = {(opset.domain, opset.version) for opset in rewritten.opset_import}
    assert opsets == {("", 13), ("ortsparse", 1)}
    assert_same_outputs(model, rewritten, {"batch": 5})


def small_cnn(width=8):
    """Exporter-style CNN: a stem Conv -> BatchNormalization -> SiLU (YOLO), a ResNet basic block
    (Conv -> BN -> Relu -> Conv -> BN -> + stem -> Relu), a strided Conv -> LeakyRelu, then
    GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(2)
    nodes, constants = [], {}

    def conv_bn(name, x, c_in, y, **attributes):
        nodes.extend(
            [
                helper.make_node("Conv", [x, f"{name}.w"], [f"{name}.c"], name=name, **attributes),
                helper.make_node(
                    "BatchNormalization",
                    [f"{name}.c", *(f"{name}.{p}" for p in ("g", "b", "m", "v"))],
                    [y],
                ),
            ]
        )
        constants[f"{name}.w"] = conv_weight(width, c_in, (3, 3), seed=len(constants))
        for p in ("g", "b", "m", "v"):
            constants[f"{name}.{p}"] = rng.uniform(0.5, 1.5, width).astype(np.float32)

    conv_bn("stem", "X", 3, "s0", pads=[1, 1, 1, 1])
    nodes += [
        helper.make_node("Sigmoid", ["s0"], ["s1"]),
        helper.make_node("Mul", ["s0", "s1"], ["stem_out"]),
    ]
    conv_bn("block.conv1", "stem_out", width, "b0", pads=[1, 1, 1, 1])
    nodes.append(helper.make_node("Relu", ["b0"], ["b1"]))
    conv_bn("block.conv2", "b1", width, "b2", auto_pad="SAME_UPPER")
    nodes += [
        helper.make_node("Add", ["b2", "stem_out"], ["b3"]),
        helper.make_node("Relu", ["b3"], ["block_out"]),
    ]
    nodes.append(
        helper.make_node("Conv", ["block_out", "down.w"], ["d0"], name="down", strides=[2, 2])
    )
    constants["down.w"] = conv_weight(width, width, (3, 3), seed=9)
    nodes += [
        helper.make_node("LeakyRelu", ["d0"], ["d1"], alpha=0.1),
        helper.make_node("GlobalAveragePool", ["d1"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "head.w"], ["Y"], name="head", transB=1),
    ]
    constants["head.w"] = sparse_weight(4, width)
    return make_model(nodes, {"X": ["batch", 3, 12, 12]}, {"Y": ["batch", 4]}, constants)


def test_cnn_convolutions_become_sparse_convs_with_their_epilogues():
    model = small_cnn()
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert [(decision.op_type, decision.fused) for decision in result.decisions] == [
        ("Conv", ["BatchNormalization", "SiLU"]),
        ("Conv", ["BatchNormalization", "Relu"]),
        ("Conv", ["BatchNormalization", "Add", "Relu"]),
        ("Conv", ["LeakyRelu"]),
        ("Gemm", []),
    ]
    assert op_types(result.model) == ["SparseConv"] * 4 + [
        "GlobalAveragePool",
        "Flatten",
        "SparseGemm",
    ]
    assert_same_outputs(model, result.model, {"batch": 2})


def test_input_shapes_size_the_symbolic_dims_the_cost_model_judges_at():
    model = make_model(
        [helper.make_node("Conv", ["X", "W"], ["Y"], name="conv", pads=[1, 1, 1, 1])],
        {"X": ["n", 8, "h", "w"]},
        {"Y": ["n", 16, "h", "w"]},
        {"W": conv_weight(16, 8, (3, 3), sparsity=0.95)},
    )
    (unsized,) = rewrite_model(model).decisions
    (sized,) = rewrite_model(model, input_shapes={"X": [1, 8, 40, 30]}).decisions
    assert "M=64" in unsized.reason and "M=1200" in sized.reason
    # The model keeps its symbolic dims.
    dims = rewrite_model(model, input_shapes={"X": [1, 8, 40, 30]}).model.graph.input[0]
    assert [dim.dim_param for dim in dims.type.tensor_type.shape.dim] == ["n", "", "h", "w"]


@pytest.mark.parametrize(
    "shapes,message",
    [
        ({"Z": [1, 8]}, "no input named 'Z'"),
        ({"A": [1, 2, 3]}, "has rank 2"),
        ({"A": [4, 3]}, "fixed size"),
    ],
)
def test_input_shapes_that_do_not_fit_the_model_are_errors(shapes, message):
    model = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])],
        {"A": ["m", 16]},
        {"Y": ["m", 8]},
        {"W": sparse_weight(16, 8)},
    )
    with pytest.raises(RewriteError, match=message):
        rewrite_model(model, input_shapes=shapes)


def test_nodes_to_convert_are_rewritten_whatever_the_cost_model_predicts():
    model = mlp()
    for tensor in model.graph.initializer:  # dense weights, which the cost model keeps
        tensor.CopyFrom(
            numpy_helper.from_array(
                np.ones(numpy_helper.to_array(tensor).shape, np.float32), tensor.name
            )
        )
    kept = rewrite_model(model)
    assert kept.rewritten_count == 0
    assert all(decision.reason.startswith("predicted ") for decision in kept.decisions)
    names = [decision.node_name for decision in kept.decisions]
    result = rewrite_model(model, convert=names[:1])
    first, *others = result.decisions
    assert first.rewritten and first.reason.endswith("; converted to be timed with what it fuses")
    assert [decision.rewritten for decision in others] == [False, False]
    assert_same_outputs(model, result.model)
