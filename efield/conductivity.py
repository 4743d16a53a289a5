"""Tissue conductivities: SimNIBS defaults per tag, overridable per tissue."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np

DEFAULT_CONDUCTIVITY = MappingProxyType({
    1: 0.126,   # white matter
    2: 0.275,   # grey matter
    3: 1.654,   # cerebrospinal fluid
    4: 0.010,   # bone
    5: 0.465,   # scalp
    6: 0.500,   # eyes
    7: 0.008,   # compact bone
    8: 0.025,   # spongy bone
    9: 0.600,   # blood
    10: 0.160,  # muscle
})
"""SimNIBS default isotropic conductivities, S/m, by tissue tag."""


def element_conductivity(tags: np.ndarray, conductivity: Mapping[int, float] | None = None) -> np.ndarray:
    """Conductivity of each element, S/m.

    `conductivity` overrides or extends the SimNIBS defaults by tag. A tag present in the mesh
    with no conductivity, or a non-positive or non-finite value, is an error.
    """
    table = dict(DEFAULT_CONDUCTIVITY)
    for tag, value in (conductivity or {}).items():
        value = float(value)
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"conductivity[{tag}] = {value}: must be a positive number in S/m")
        table[int(tag)] = value
    present = np.unique(tags)
    missing = [int(t) for t in present if int(t) not in table]
    if missing:
        raise ValueError(f"no conductivity for tissue tag(s) {missing}: pass conductivity={{tag: S_per_m}}")
    lookup = np.zeros(int(present.max()) + 1)
    for t in present:
        lookup[t] = table[int(t)]
    return lookup[tags]
