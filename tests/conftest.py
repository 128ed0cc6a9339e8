"""Test configuration: float64 everywhere unless a test asks for float32 explicitly.

Exact-oracle and golden-value tests need float64; the library itself never flips
``jax_enable_x64``, the tests do (before any array is created).
"""

import jax

jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every compiled XLA:CPU program holds its own memory mappings; a few hundred of them
    in one process exceed Linux's default vm.max_map_count (65530) and the next
    compilation aborts.  Modules do not share programs, so clearing costs nothing.
    """
    yield
    jax.clear_caches()
    if _memory_maps() > 40_000:  # pragma: no cover - diagnostic for the next reader
        print(f"\n[conftest] {_memory_maps()} memory maps after clearing JAX caches")
