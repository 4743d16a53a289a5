"""Suite-wide fixtures and hooks."""

import gc
import os
from pathlib import Path

import jax
import pytest

import efield


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip where JAX has no GPU backend."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU: JAX has no GPU backend here")
        for item in gpu_tests:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def threaded_client():
    """A Dask client of one in-process worker with two threads, for run functions that need no
    process of their own (the harness tests' fakes)."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="session")
def validation_script():
    """load(name): validation/<name>.py as a module (its functions; main does not run)."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "validation" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def sphere12():
    """The default three-shell sphere head (85, 90, 95 mm) at 12 mm edges (about 18k tetrahedra)."""
    return efield.sphere_head(max_edge_mm=12.0)


@pytest.fixture(scope="session")
def four_shells():
    """Grey matter, CSF, bone and scalp (80, 85, 90, 95 mm) at 10 mm edges: room for a cortical
    patch."""
    return efield.sphere_head(radii_mm=(80.0, 85.0, 90.0, 95.0), max_edge_mm=10.0)


@pytest.fixture(scope="session")
def figure8():
    return efield.figure8_70mm()


def _shared_folder(tmp_path_factory, name: str):
    """A folder for this run that the suite's worker processes share (pytest-xdist: the
    workers' temporary folders lie side by side)."""
    root = tmp_path_factory.getbasetemp()
    folder = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / name
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache in a temporary folder for the run: a program that
    another test module or worker already compiled is loaded, not compiled again (each module
    drops its compiled code, see `release_compiled_code`). The processes that tests start
    (sweep workers, notebook kernels, `tmsim` commands) inherit it through the environment."""
    folder = _shared_folder(tmp_path_factory, "jax-cache")
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    environment = {"JAX_COMPILATION_CACHE_DIR": str(folder),
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    yield folder
    jax.config.update("jax_compilation_cache_dir", None)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def template_cache(tmp_path_factory):
    """The folder for the template heads the suite builds, notebooks included: each size is
    built once, then loaded, by all the suite's worker processes; a head two workers build at
    once is written whole by each (atomic rename), so the last one simply wins."""
    return _shared_folder(tmp_path_factory, "tmsim-cache")


@pytest.fixture(scope="module", autouse=True)
def release_compiled_code():
    """Drop JAX's compiled executables after a test module once this process holds more than
    half of Linux's memory-mapping limit (and after every module where it cannot tell).

    Each XLA:CPU executable keeps its own memory mappings, and the suite compiles hundreds of
    distinct networks and meshes; kept all together they pass Linux's default limit of 65,530
    mappings per process (vm.max_map_count), after which every mmap fails: LLVM cannot place new
    code and gmsh crashes while meshing. Dropping them after every module instead would compile
    the small programs that modules share (JAX's own operations) again in each.
    """
    yield
    if _mappings_over_half_the_limit():
        jax.clear_caches()
    gc.collect()


def _mappings_over_half_the_limit() -> bool:
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps") as maps:
            used = sum(1 for _ in maps)
    except (OSError, ValueError):
        return True
    return used > limit // 2

