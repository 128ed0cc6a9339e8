"""Test configuration: float64 everywhere unless a test asks for float32 explicitly.

Exact-oracle and golden-value tests need float64; the library itself never flips
``jax_enable_x64``, the tests do (before any array is created).
"""

import jax

jax.config.update("jax_enable_x64", True)
