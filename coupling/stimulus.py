"""From the E-field to spikes: the field at each neuron and the forced spikes of a protocol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activation import activated, effective_field, pulse_events
from .patch import CorticalPatch


@dataclass(frozen=True, eq=False)
class NeuronField:
    """The macroscopic E-field at the neurons of a patch at 100 % of the stimulator's output.

    E: population -> (n, 3) V/m; tags: population -> (n,) tissue of each neuron's position;
    didt_A_per_s: the dI/dt it was computed for (the coil's maximum)."""

    E: dict
    tags: dict
    didt_A_per_s: float

    def magnitude(self, population: str) -> np.ndarray:
        """|E| at the neurons of `population`, V/m."""
        return np.linalg.norm(self.E[population], axis=1)

    def normal_component(self, patch: CorticalPatch, population: str) -> np.ndarray:
        """E along the column axis (outward positive), V/m."""
        return np.sum(self.E[population] * patch.axes[population], axis=1)

    def angle_deg(self, patch: CorticalPatch, population: str) -> np.ndarray:
        """Angle between E and the outward column axis, degrees (0: E points out of the cortex)."""
        cos = self.normal_component(patch, population) / np.maximum(self.magnitude(population), 1e-300)
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    def summary(self, patch: CorticalPatch) -> dict:
        """Per population: median and max |E|, median normal component (V/m), median angle (deg)."""
        return {p: dict(median_magnE=float(np.median(self.magnitude(p))),
                        max_magnE=float(self.magnitude(p).max()),
                        median_normal=float(np.median(self.normal_component(patch, p))),
                        median_angle_deg=float(np.median(self.angle_deg(patch, p))))
                for p in self.E}


def neuron_field(mesh, efield_result, patch: CorticalPatch, didt_A_per_s: float) -> NeuronField:
    """E at every neuron of the patch at didt_A_per_s, the stimulator's maximum dI/dt (100 %
    MSO), from an efield.EFieldResult (the primary field interpolated within each tetrahedron,
    see efield.field_at; a result computed at another dI/dt is scaled, E being linear in dI/dt)
    or from an (m, 3) per-tetrahedron E (V/m) at didt_A_per_s; a neuron outside the mesh is an
    error."""
    from efield.cortex import field_at

    if not (np.isfinite(didt_A_per_s) and didt_A_per_s > 0):
        raise ValueError(f"neuron_field: didt_A_per_s={didt_A_per_s!r}: expected the coil's maximum dI/dt "
                         "(coil.didt_max), a finite number > 0 (A/s)")
    scale = didt_A_per_s / getattr(efield_result, "didt", didt_A_per_s)
    E, tags = {}, {}
    for name, points in patch.positions_mm.items():
        E[name], tags[name] = field_at(mesh, efield_result, points)
        E[name] = E[name] * scale
        if np.any(tags[name] < 0):
            raise ValueError(f"population {name!r}: {int(np.sum(tags[name] < 0))} neurons lie outside "
                             "the mesh")
    return NeuronField(E, tags, float(didt_A_per_s))


def stimulus_events(patch: CorticalPatch, field: NeuronField, pulse_times_ms, pulse_scale, percent_mso: float,
                    *, i_waves: bool = True, dt_ms: float | None = None):
    """Forced spikes (activation.PulseEvents) of pulses at pulse_times_ms (ms), each at
    percent_mso % of the stimulator's output times pulse_scale (per pulse; zeros for sham).
    A neuron fires when scale * E_eff reaches its threshold (see coupling.activation)."""
    if not 0 <= percent_mso <= 100:
        raise ValueError(f"percent_mso must be in [0, 100], got {percent_mso}")
    scale = np.asarray(pulse_scale, np.float64) * (percent_mso / 100.0)
    masks, delays = {}, {}
    for name in patch.populations:
        cls = patch.cell_classes[name]
        e_eff = effective_field(field.E[name], patch.axes[name], cls.angle_weight)
        masks[name] = activated(e_eff, patch.thresholds_V_per_m[name], pulse_scale=scale)
        delays[name] = cls.delay_ms
    return pulse_events(pulse_times_ms, masks, delays, n_waves=patch.waves, i_waves=i_waves, dt_ms=dt_ms)
