"""Makes every test import the installed ortsparse (with its compiled library and _isa module).

The rewriter's rule tests live inside the source package (python/ortsparse/...). Collecting them
would otherwise bind the name `ortsparse` to the source tree, which has no compiled parts, and
the outcome would depend on which tests happened to be collected first.
"""

import ortsparse  # noqa: F401
