"""seqjax: recurrent sequence models as pure JAX functions.

Modules: ``seqjax.cells`` (pure cells and the CELLS registry), ``seqjax.unroll``
(lax.scan unrolls, stacks, bidirectional, the Python-loop reference) and
``seqjax.diagnostics`` (gradient-flow measures).
"""

from seqjax.cells import CELLS, LSTMCarry, get_cell
from seqjax import fast  # noqa: F401  (registers the fused unroll impls)
import seqjax.parallel  # noqa: F401,E402  registers unroll(..., impl="parallel") (issue 8)

__version__ = "0.1.0"
__all__ = ["CELLS", "LSTMCarry", "get_cell"]
