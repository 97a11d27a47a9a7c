"""seqjax: recurrent sequence models as pure JAX functions.

Modules: ``seqjax.cells`` (pure cells and the CELLS registry), ``seqjax.unroll``
(lax.scan unrolls, stacks, bidirectional, the Python-loop reference, the impl registry and
``resolve_impl``) and ``seqjax.diagnostics`` (gradient-flow measures).
"""

from seqjax.cells import CELLS, LSTMCarry, get_cell
from seqjax import fast  # noqa: F401  registers unroll(..., impl="fused" / "fused_chunked")
from seqjax import parallel  # noqa: F401  registers unroll(..., impl="parallel" / "parallel_log")

__version__ = "0.1.0"
__all__ = ["CELLS", "LSTMCarry", "get_cell"]
