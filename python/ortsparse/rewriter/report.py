"""The per-node table `rewrite-model --report` prints."""

from __future__ import annotations

from collections.abc import Sequence

from ortsparse.rewriter.decisions import Decision

_COLUMNS = ("node", "op", "shape", "sparsity", "format", "decision", "fused")


def format_report(decisions: Sequence[Decision], decided_by: str = "") -> str:
    """One row per MatMul/Gemm/Conv: weight shape K x N, sparsity, format, rewritten or kept and
    why (predicted, or measured by verification), fused, and where verification timed it, what
    it measured; then the count, and what decided (RewriteResult.decided_by) when given."""
    measured = any(decision.measured for decision in decisions)
    columns = (*_COLUMNS, "measured") if measured else _COLUMNS
    rows = [columns, *(_row(decision, measured) for decision in decisions)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(columns) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        for row in rows
    ]
    rewritten = sum(decision.rewritten for decision in decisions)
    lines.append(f"{rewritten} of {len(decisions)} MatMul/Gemm/Conv node(s) rewritten")
    if decided_by:
        lines.append(f"decided by: {decided_by}")
    return "\n".join(line.rstrip() for line in lines)


def _row(decision: Decision, measured: bool) -> tuple[str, ...]:
    shape = (
        f"{decision.weight_shape[0]}x{decision.weight_shape[1]}" if decision.weight_shape else "?"
    )
    sparsity = f"{decision.sparsity:.1%}" if decision.sparsity is not None else "-"
    verdict = "rewritten" if decision.rewritten else "kept"
    return (
        decision.node_name,
        decision.op_type,
        shape,
        sparsity,
        decision.format,
        f"{verdict}: {decision.reason}",
        "+".join(decision.fused) or "-",
        *([decision.measured or "-"] if measured else []),
    )
