from ortsparse.rewriter import Decision, format_report


def test_report_has_one_aligned_row_per_node_and_a_summary():
    decisions = [
        Decision(
            "/encoder/layer.0/MatMul",
            "MatMul",
            (768, 3072),
            0.9,
            "block4",
            True,
            "predicted 3.10x faster than dense at M=64",
            ["Add", "Gelu(erf)"],
        ),
        Decision("head", "Gemm", None, None, "-", False, "weight is not a constant"),
    ]
    lines = format_report(decisions).splitlines()
    assert lines[0].split() == ["node", "op", "shape", "sparsity", "format", "decision", "fused"]
    assert lines[1].split()[:5] == [
        "/encoder/layer.0/MatMul",
        "MatMul",
        "768x3072",
        "90.0%",
        "block4",
    ]
    assert "rewritten: predicted 3.10x faster" in lines[1] and lines[1].endswith("Add+Gelu(erf)")
    assert lines[2].split()[:5] == ["head", "Gemm", "?", "-", "-"]
    assert "kept: weight is not a constant" in lines[2]
    op_column = lines[0].index("op")
    assert lines[1][op_column:].startswith("MatMul ") and lines[2][op_column:].startswith("Gemm ")
    assert lines[-1] == "1 of 2 MatMul/Gemm/Conv node(s) rewritten"


def test_report_ends_with_what_decided():
    decision = Decision("mm", "MatMul", (8, 8), 0.5, "csr", True, "min-sparsity 0.5")
    lines = format_report([decision], "cost model measured on this CPU").splitlines()
    assert lines[-2] == "1 of 1 MatMul/Gemm/Conv node(s) rewritten"
    assert lines[-1] == "decided by: cost model measured on this CPU"
