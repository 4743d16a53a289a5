"""SONATA (HDF5) writers: spike reports and network nodes/edges. Every file is written to a
temporary path and renamed, so a failed write (a full disk: one OSError naming the file) leaves
no partial file."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from tmsim_io import atomic_hdf5
from .spikes import SpikeTrains

SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)


def write_sonata_spikes(path, spikes: dict) -> Path:
    """Spikes to `path`: /spikes/<population>/timestamps (ms, float64, attribute units="ms") and
    node_ids (uint64), sorted by time; attribute sorting="by_time" on /spikes/<population>."""
    path = Path(path)
    with atomic_hdf5(path) as (f, _):
        f.attrs["magic"] = np.uint32(SONATA_MAGIC)
        f.attrs["version"] = np.asarray(SONATA_VERSION, np.uint32)
        root = f.create_group("spikes")
        for population, trains in spikes.items():
            order = np.argsort(trains.times_ms, kind="stable")
            group = root.create_group(population)
            group.attrs["sorting"] = "by_time"
            stamps = group.create_dataset("timestamps", data=np.asarray(trains.times_ms, np.float64)[order])
            stamps.attrs["units"] = "ms"
            group.create_dataset("node_ids", data=np.asarray(trains.ids, np.uint64)[order])
    return path


def write_sonata_network(path, network) -> Path:
    """Network to `path`: /nodes/<population>/{node_id, node_type_id, node_group_id,
    node_group_index} with group 0 holding x, y, z (mm, when known) and the neuron parameters;
    /edges/<projection>/{source_node_id, target_node_id} (uint64, attribute node_population),
    edge_type_id, edge_group_id, edge_group_index, and group 0 with syn_weight (pA or nS) and
    delay (ms)."""
    path = Path(path)
    with atomic_hdf5(path) as (f, _):
        f.attrs["magic"] = np.uint32(SONATA_MAGIC)
        f.attrs["version"] = np.asarray(SONATA_VERSION, np.uint32)
        nodes = f.create_group("nodes")
        for type_id, pop in enumerate(network.populations):
            g = nodes.create_group(pop.name)
            g["node_id"] = np.arange(pop.n, dtype=np.uint64)
            g["node_type_id"] = np.full(pop.n, type_id, np.int64)
            g["node_group_id"] = np.zeros(pop.n, np.uint32)
            g["node_group_index"] = np.arange(pop.n, dtype=np.uint64)
            group0 = g.create_group("0")
            if pop.positions_mm is not None:
                for axis, column in zip("xyz", np.asarray(pop.positions_mm, np.float64).T):
                    group0[axis] = column
            dyn = group0.create_group("dynamics_params")
            for name, values in pop.params.arrays(pop.n, pop.name).items():
                dyn[name] = values
        edges = f.create_group("edges")
        for type_id, proj in enumerate(network.projections):
            g = edges.create_group(proj.name)
            g.attrs["synapse_model"] = network.synapse
            g.attrs["receptor"] = proj.receptor
            src = g.create_dataset("source_node_id", data=proj.pre_ids.astype(np.uint64))
            src.attrs["node_population"] = proj.pre
            trg = g.create_dataset("target_node_id", data=proj.post_ids.astype(np.uint64))
            trg.attrs["node_population"] = proj.post
            g["edge_type_id"] = np.full(proj.n_synapses, type_id, np.int64)
            g["edge_group_id"] = np.zeros(proj.n_synapses, np.uint32)
            g["edge_group_index"] = np.arange(proj.n_synapses, dtype=np.uint64)
            group0 = g.create_group("0")
            group0["syn_weight"] = proj.weight
            group0["delay"] = proj.delay_ms
    return path


class SpikeFileWriter:
    """Append spikes, in time order, to a SONATA spike file as a run goes (bounded memory: up
    to FLUSH_SPIKES spikes are held, then written together).

    Use as a context manager; the file appears at `path` only when the block ends without
    error. populations: name -> number of neurons.
    """

    FLUSH_SPIKES = 1 << 16

    def __init__(self, path, populations: dict[str, int]):
        self.path, self.populations = Path(path), dict(populations)
        self._names = list(self.populations)
        self._held, self._n_held = [[] for _ in self._names], 0

    def __enter__(self):
        with ExitStack() as stack:
            self._file, self._check = stack.enter_context(atomic_hdf5(self.path))
            self._file.attrs["magic"] = np.uint32(SONATA_MAGIC)
            self._file.attrs["version"] = np.asarray(SONATA_VERSION, np.uint32)
            for name in self._names:
                group = self._file.create_group(f"spikes/{name}")
                group.attrs["sorting"] = "by_time"
                group.create_dataset("timestamps", (0,), np.float64, maxshape=(None,), chunks=(65536,))
                group["timestamps"].attrs["units"] = "ms"
                group.create_dataset("node_ids", (0,), np.uint64, maxshape=(None,), chunks=(65536,))
            self._stack = stack.pop_all()
        return self

    def append(self, population_index: int, times_ms: np.ndarray, ids: np.ndarray):
        """Add spikes of one population that are not earlier than those already added."""
        self._held[population_index].append((np.array(times_ms), np.array(ids)))   # copies: callers may reuse
        self._n_held += np.size(times_ms)
        if self._n_held >= self.FLUSH_SPIKES:
            self._flush()

    def _flush(self):
        """Write the spikes held, each population's in one piece."""
        for name, held in zip(self._names, self._held):
            if not held:
                continue
            group = self._file["spikes"][name]
            for k, dataset_name in enumerate(("timestamps", "node_ids")):
                values = np.concatenate([part[k] for part in held])
                dataset = group[dataset_name]
                start = dataset.shape[0]
                dataset.resize((start + values.size,))
                dataset[start:] = values
            held.clear()
        self._n_held = 0
        self._check()

    def __exit__(self, *exc):
        if exc[0] is None:
            try:
                self._flush()
            except BaseException:
                if not self._stack.__exit__(*sys.exc_info()):
                    raise
                return False
        return self._stack.__exit__(*exc)


class SpikeFile(Mapping):
    """Read-only population -> SpikeTrains view of a SONATA spike file, read on access."""

    def __init__(self, path, populations: dict[str, int]):
        self.path, self.populations = Path(path), dict(populations)

    def __getitem__(self, population: str):
        import h5py

        if population not in self.populations:
            raise KeyError(population)
        with h5py.File(self.path, "r") as f:
            group = f["spikes"][population]
            return SpikeTrains(group["timestamps"][:], group["node_ids"][:].astype(np.int64),
                               self.populations[population])

    def __iter__(self):
        return iter(self.populations)

    def __len__(self) -> int:
        return len(self.populations)


def read_sonata_spikes(path) -> dict:
    """Population -> SpikeTrains of a SONATA spike file (any writer: ids local to each
    population, times in ms; the population size is taken as the largest id + 1 unless the
    group has an attribute n_nodes). Errors name the file and the missing dataset."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SONATA spike file {path} does not exist")
    out = {}
    with h5py.File(path, "r") as f:
        if "spikes" not in f:
            raise ValueError(f"{path}: no /spikes group (not a SONATA spike file)")
        for name, group in f["spikes"].items():
            for dataset in ("timestamps", "node_ids"):
                if dataset not in group:
                    raise ValueError(f"{path}: /spikes/{name} has no {dataset} dataset")
            times, ids = group["timestamps"][:].astype(np.float64), group["node_ids"][:].astype(np.int64)
            if times.shape != ids.shape:
                raise ValueError(f"{path}: /spikes/{name} timestamps and node_ids differ in length")
            if group["timestamps"].attrs.get("units", "ms") not in ("ms", b"ms"):
                raise ValueError(f"{path}: /spikes/{name}/timestamps units must be ms")
            order = np.argsort(times, kind="stable")
            n = int(group.attrs.get("n_nodes", ids.max(initial=-1) + 1))
            out[name] = SpikeTrains(times[order], ids[order], n)
    return out


class WeightSnapshotWriter:
    """Append snapshots of plastic projections to an HDF5 file as a run goes: per projection
    /weights/<name>/times_ms (n,), /weights/<name>/values (n, n_synapses) float32 (pA or nS,
    the Projection's synapse order) and, for three-factor rules, /bdnf/<name>/values
    (n, n_post) in half-saturation units. The file appears at `path` only when the context
    block ends without error. sizes: name -> (n_synapses, n_post or None)."""

    def __init__(self, path, sizes: dict[str, tuple[int, int | None]]):
        self.path, self.sizes = Path(path), dict(sizes)

    def __enter__(self):
        with ExitStack() as stack:
            self._file, self._check = stack.enter_context(atomic_hdf5(self.path))
            for name, (n_syn, n_post) in self.sizes.items():
                g = self._file.create_group(f"weights/{name}")
                g.create_dataset("times_ms", (0,), np.float64, maxshape=(None,))
                g.create_dataset("values", (0, n_syn), np.float32, maxshape=(None, n_syn),
                                 chunks=(1, max(1, min(n_syn, 1 << 20))))
                if n_post is not None:
                    self._file.create_group(f"bdnf/{name}").create_dataset(
                        "values", (0, n_post), np.float32, maxshape=(None, n_post), chunks=(1, n_post))
            self._stack = stack.pop_all()
        return self

    def append(self, name: str, time_ms: float, weights: np.ndarray, bdnf: np.ndarray | None = None):
        """One snapshot of projection `name` at time_ms."""
        parts = [(f"weights/{name}/times_ms", time_ms), (f"weights/{name}/values", weights)]
        if bdnf is not None:
            parts.append((f"bdnf/{name}/values", bdnf))
        for key, values in parts:
            dataset = self._file[key]
            dataset.resize(dataset.shape[0] + 1, axis=0)
            dataset[-1] = np.asarray(values).reshape(dataset.shape[1:])
        self._check()

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)


def read_weight_snapshots(path) -> dict:
    """Projection name -> dict(times_ms (n,), weights (n, n_synapses), bdnf (n, n_post) or
    None) from a file written by `simulate(..., snapshots_path=...)`."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight snapshot file {path} does not exist")
    with h5py.File(path, "r") as f:
        if "weights" not in f:
            raise ValueError(f"{path}: no /weights group (not a weight snapshot file)")
        return {name: dict(times_ms=g["times_ms"][:], weights=g["values"][:],
                           bdnf=f[f"bdnf/{name}/values"][:] if f"bdnf/{name}" in f else None)
                for name, g in f["weights"].items()}
