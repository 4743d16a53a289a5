"""Course checkpoints: a NetworkState and the course's records in one .npz file, written whole or not at all.

The state is stored as its pytree leaves (state_000, state_001, ...) and rebuilt against
neurons.initial_state of the same network and dt_ms, leaf by leaf with the same shapes and
dtypes; values are kept bit for bit. Other arrays go in as they are; `meta` is a JSON string.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import neurons
from tmsim_io import atomic_output

FORMAT = "tmsim-course-checkpoint-2"
"""2: the network state's synaptic variables hold the events due at its step, and the engine's
random streams changed (commits 55dc7bc, 9f9fc1a); a format-1 file would not resume exactly."""


def save_checkpoint(path, state: neurons.NetworkState, meta: dict, arrays: dict) -> Path:
    """Write `state`, the JSON-ready `meta` and the named numpy `arrays` to path atomically."""
    path = Path(path)
    leaves = jax.tree_util.tree_leaves(state)
    content = {f"state_{i:03d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    clash = set(content) & set(arrays) | ({"meta"} & set(arrays))
    if clash:
        raise ValueError(f"save_checkpoint: reserved array names {sorted(clash)}")
    meta = dict(meta, format=FORMAT, n_leaves=len(leaves))
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **content, **arrays)
    return path


def load_checkpoint(path, net: neurons.Network, dt_ms: float) -> tuple[neurons.NetworkState, dict, dict]:
    """(state, meta, arrays) from a file written by save_checkpoint for `net` at dt_ms;
    ValueError naming the file if it is not one or its state does not fit the network."""
    path = Path(path)
    template = neurons.initial_state(net, dt_ms)
    like, treedef = jax.tree_util.tree_flatten(template)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            leaves = [data[f"state_{i:03d}"] for i in range(meta["n_leaves"])]
            arrays = {k: data[k] for k in data.files if k != "meta" and not k.startswith("state_")}
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a readable course checkpoint ({err})") from None
    if len(leaves) != len(like) or any(a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype
                                       for a, b in zip(leaves, like)):
        raise ValueError(f"{path}: the saved network state does not fit this network at dt_ms={dt_ms} "
                         "(different sizes or dtypes)")
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in leaves]), meta, arrays
