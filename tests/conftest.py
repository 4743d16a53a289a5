"""Suite-wide fixtures."""

import gc

import jax
import pytest


@pytest.fixture(scope="module", autouse=True)
def release_compiled_code():
    """Drop JAX's compiled executables after each test module.

    Each XLA:CPU executable keeps its own memory mappings, and the suite compiles hundreds of
    distinct networks and meshes; kept all together they pass Linux's default limit of 65,530
    mappings per process (vm.max_map_count), after which every mmap fails: LLVM cannot place new
    code and gmsh crashes while meshing.
    """
    yield
    jax.clear_caches()
    gc.collect()
