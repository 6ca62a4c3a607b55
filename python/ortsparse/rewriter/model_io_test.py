import onnx
import pytest
from onnx import helper

from ortsparse.rewriter import RewriteError, rewrite_file
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    make_model,
    op_types,
    sparse_weight,
)


def two_layer_model():
    nodes = [
        helper.make_node("MatMul", ["A", "w0"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w1"], ["Y"], name="second"),
    ]
    constants = {"w0": sparse_weight(64, 64, seed=0), "w1": sparse_weight(64, 32, seed=1)}
    return make_model(nodes, {"A": ["m", 64]}, {"Y": ["m", 32]}, constants)


def save_with_external_data(model, path):
    """Saves a copy: saving as external data empties the saved model's tensors."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy, path, save_as_external_data=True, location=f"{path.name}.data", size_threshold=0
    )


def test_external_data_round_trip(tmp_path):
    model = two_layer_model()
    in_path = tmp_path / "in.onnx"
    save_with_external_data(model, in_path)
    out_path = tmp_path / "out.onnx"

    # A threshold of 0 bytes stands in for a model past 2 GB.
    rewrite_file(in_path, out_path, min_sparsity=FORCE_REWRITE, external_data_threshold=0)

    assert (tmp_path / "out.onnx.data").is_file()
    onnx.checker.check_model(str(out_path))
    rewritten = onnx.load(out_path)
    assert op_types(rewritten) == ["SparseGemm", "SparseGemm"]
    assert any(
        tensor.data_location == onnx.TensorProto.EXTERNAL
        for tensor in onnx.load(out_path, load_external_data=False).graph.initializer
    )
    assert_same_outputs(model, rewritten)


def test_small_result_is_saved_in_one_file_even_from_external_data(tmp_path):
    in_path = tmp_path / "in.onnx"
    save_with_external_data(two_layer_model(), in_path)
    out_path = tmp_path / "out.onnx"
    rewrite_file(in_path, out_path, min_sparsity=FORCE_REWRITE)
    assert not (tmp_path / "out.onnx.data").exists()
    assert op_types(onnx.load(out_path)) == ["SparseGemm", "SparseGemm"]


def test_rewriting_again_over_an_existing_data_file_replaces_it(tmp_path):
    in_path, out_path = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save_model(two_layer_model(), in_path)
    for _ in range(2):
        rewrite_file(in_path, out_path, min_sparsity=FORCE_REWRITE, external_data_threshold=0)
    onnx.checker.check_model(str(out_path))
    assert_same_outputs(two_layer_model(), onnx.load(out_path))


def test_report_is_printed(tmp_path, capsys):
    in_path = tmp_path / "in.onnx"
    onnx.save_model(two_layer_model(), in_path)
    rewrite_file(in_path, tmp_path / "out.onnx", min_sparsity=FORCE_REWRITE, report=True)
    assert "2 of 2 MatMul/Gemm/Conv node(s) rewritten" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make_input,message",
    [
        (lambda path: None, "cannot read"),
        (lambda path: path.mkdir(), "cannot read"),
        (lambda path: path.write_text("not a model"), "not a valid ONNX model"),
        (lambda path: path.write_bytes(b""), "not a valid ONNX model"),
        (lambda path: path.write_bytes(bytes(range(256)) * 4), "not a valid ONNX model"),
    ],
    ids=["missing", "directory", "text", "empty", "garbage"],
)
def test_unusable_input_file_is_a_rewrite_error(tmp_path, make_input, message):
    in_path = tmp_path / "in.onnx"
    make_input(in_path)
    with pytest.raises(RewriteError, match=message):
        rewrite_file(in_path, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_missing_external_data_file_is_a_rewrite_error(tmp_path):
    in_path = tmp_path / "in.onnx"
    save_with_external_data(two_layer_model(), in_path)
    (tmp_path / "in.onnx.data").unlink()
    with pytest.raises(RewriteError):
        rewrite_file(in_path, tmp_path / "out.onnx")
