"""Test configuration: float64 everywhere unless a test asks for float32 explicitly.

Exact-oracle and golden-value tests need float64; the library itself never flips
``jax_enable_x64``, the tests do (before any array is created).
"""

import os
import tempfile

# One on-disk compilation cache for the whole test run: the parallel workers, the
# subprocesses that tests start (they inherit the variable) and the modules after
# ``jax.clear_caches()`` below load a program compiled once instead of compiling it again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"mfg-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402

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


@pytest.fixture(scope="session")
def exported_serverless_run(tmp_path_factory):
    """A short NAC run on a small serverless game (3 containers, 2 CPU steps) and its
    exported policy: (run folder, policy folder).  Shared by the export and control-loop
    tests, trained once per session."""
    from experiments.cli import main

    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "serverless_tabular", "--set", "run.iterations=10", "--set", "run.chunk_size=5",
                 "--set", "game.params.max_containers=3", "--set", "game.params.max_cpu_steps=2",
                 "--out", str(out), "--no-progress"]) == 0
    run_dir = out / "serverless_tabular"
    assert main(["export", str(run_dir)]) == 0
    return run_dir, run_dir / "policy"


@pytest.fixture
def fake():
    """A loopback server speaking the Kubernetes, Knative and OpenWhisk APIs (tests/fake_platforms.py)."""
    from fake_platforms import FakePlatform

    platform = FakePlatform()
    platform.url = platform.start()
    yield platform
    platform.stop()
