"""Strict numerics for every test, and 8 fake CPU devices so sharding runs on a laptop.

These settings must be made before JAX initialises a backend, which is why they live
here, at import time of the test session.
"""

import jax

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
