"""The one exception the rewriter raises for inputs it cannot rewrite."""


class RewriteError(Exception):
    """The input is missing, unreadable, not ONNX, or malformed; the message says which and why."""
