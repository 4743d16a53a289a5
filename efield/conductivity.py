"""Tissue conductivities: SimNIBS defaults per tag, overridable per tissue."""

from __future__ import annotations

import operator
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .checks import finite_number

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

    `conductivity` overrides or extends the SimNIBS defaults by tag. A tag that is not an
    integer, a value that is not a positive finite number, or a tag present in the mesh with
    no conductivity is an error naming the tag.
    """
    if conductivity is not None and not isinstance(conductivity, Mapping):
        raise TypeError(f"conductivity must be a mapping {{tag: S_per_m}}, got {conductivity!r}")
    table = dict(DEFAULT_CONDUCTIVITY)
    for tag, value in (conductivity or {}).items():
        try:
            tag = operator.index(tag)
        except TypeError:
            raise TypeError(f"conductivity: tissue tag {tag!r} must be an integer") from None
        table[tag] = finite_number(value, f"conductivity[{tag}]", 0.0, strict=True, unit="S/m")
    present = np.unique(tags)
    missing = [int(t) for t in present if int(t) not in table]
    if missing:
        raise ValueError(f"no conductivity for tissue tag(s) {missing}: give one in S/m with "
                         "conductivity={tag: S_per_m} in Python or --conductivity TAG=S_PER_M "
                         "on the tmsim efield or tmsim target command line")
    values = np.array([table[int(t)] for t in present])
    return values[np.searchsorted(present, tags)]
