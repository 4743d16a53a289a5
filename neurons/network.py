"""Populations, external Poisson drive and the network description passed to `simulate`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ._checks import finite, integer, number
from .connectivity import RECEPTORS, Projection

NEURON_MODELS = ("lif", "adex")
SYNAPSE_MODELS = ("current", "conductance")


@dataclass(frozen=True)
class NeuronParams:
    """Neuron parameters; each a scalar or an array with one value per neuron (heterogeneity).

    LIF: C dv/dt = -g_leak (v - E_leak) + I_syn + I_bias + I_injected; spike at v >= v_threshold.
    AdEx (Brette & Gerstner 2005) adds g_leak delta_T exp((v - v_threshold)/delta_T) - w to
    the right-hand side, tau_w dw/dt = a (v - E_leak) - w, spike at v >= v_peak, then w += b.
    Synapses: exponential currents (pA) or conductances (nS) with reversal E_exc / E_inh.
    """

    C_pF: float | np.ndarray = 200.0
    g_leak_nS: float | np.ndarray = 10.0
    E_leak_mV: float | np.ndarray = -60.0
    v_threshold_mV: float | np.ndarray = -50.0
    v_reset_mV: float | np.ndarray = -60.0
    t_ref_ms: float | np.ndarray = 5.0
    tau_exc_ms: float | np.ndarray = 5.0
    tau_inh_ms: float | np.ndarray = 10.0
    E_exc_mV: float | np.ndarray = 0.0
    E_inh_mV: float | np.ndarray = -80.0
    I_bias_pA: float | np.ndarray = 0.0
    delta_T_mV: float | np.ndarray = 2.0
    v_peak_mV: float | np.ndarray = 0.0
    a_nS: float | np.ndarray = 0.0
    b_pA: float | np.ndarray = 0.0
    tau_w_ms: float | np.ndarray = 100.0

    def arrays(self, n: int, population: str) -> dict[str, np.ndarray]:
        """Every parameter as a float64 array of n values (ValueError naming the population and
        parameter unless finite and in range)."""
        out = {}
        for f in fields(self):
            arr = finite(getattr(self, f.name), f"population {population!r}: NeuronParams.{f.name}")
            if arr.ndim == 0:
                arr = np.full(n, float(arr))
            if arr.shape != (n,):
                raise ValueError(f"population {population!r}: NeuronParams.{f.name} must be a scalar "
                                 f"or have shape ({n},), got {arr.shape}")
            out[f.name] = arr
        for name in ("C_pF", "g_leak_nS", "tau_exc_ms", "tau_inh_ms", "tau_w_ms", "delta_T_mV"):
            if np.any(out[name] <= 0):
                raise ValueError(f"population {population!r}: NeuronParams.{name} must be > 0")
        if np.any(out["t_ref_ms"] < 0):
            raise ValueError(f"population {population!r}: NeuronParams.t_ref_ms must be >= 0")
        return out


@dataclass(frozen=True, eq=False)
class Population:
    """n neurons sharing a name; v_init_mV scalar or (n,); positions_mm optional (n, 3).

    rate_Hz: if set, a Poisson generator population: each neuron spikes independently with
    probability rate_Hz * dt in every step (as Brian2's PoissonGroup); its neuron parameters
    and synaptic input are then ignored for spiking. Every number is checked here (finite,
    in range), so that a bad one fails before any simulation."""

    name: str
    n: int
    params: NeuronParams = field(default_factory=NeuronParams)
    v_init_mV: float | np.ndarray = -60.0
    positions_mm: np.ndarray | None = None
    rate_Hz: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"Population name must be a str, got {self.name!r}")
        if not self.name or "/" in self.name:
            raise ValueError(f"Population name must be non-empty without '/', got {self.name!r}")
        what = f"Population {self.name!r}"
        if self.rate_Hz is not None:
            number(self.rate_Hz, f"{what}: rate_Hz", 0.0)
        integer(self.n, f"{what}: n", 1)
        v = finite(self.v_init_mV, f"{what}: v_init_mV")
        if v.ndim and v.shape != (self.n,):
            raise ValueError(f"{what}: v_init_mV must be a scalar or have shape ({self.n},), got {v.shape}")
        positions = None if self.positions_mm is None else finite(self.positions_mm, f"{what}: positions_mm")
        if positions is not None and positions.shape != (self.n, 3):
            raise ValueError(f"{what}: positions_mm must have shape ({self.n}, 3), got {positions.shape}")
        self.params.arrays(self.n, self.name)


@dataclass(frozen=True)
class PoissonInput:
    """n_sources independent Poisson trains at rate_Hz onto every neuron of `population`, each
    spike adding `weight` (pA or nS) to `receptor` ("exc" or "inh")."""

    population: str
    n_sources: int
    rate_Hz: float
    weight: float
    receptor: str = "exc"

    def __post_init__(self):
        what = f"PoissonInput onto {self.population!r}"
        if self.receptor not in RECEPTORS:
            raise ValueError(f"{what}: receptor must be one of {RECEPTORS}, got {self.receptor!r}")
        integer(self.n_sources, f"{what}: n_sources", 0)
        number(self.rate_Hz, f"{what}: rate_Hz", 0.0)
        number(self.weight, f"{what}: weight")


@dataclass(frozen=True, eq=False)
class Network:
    """Populations, projections between them and external Poisson drive.

    neuron: "lif" or "adex"; synapse: "current" (weights in pA) or "conductance" (nS).
    Neurons are numbered globally in population order (population offsets).
    """

    populations: tuple[Population, ...]
    projections: tuple[Projection, ...] = ()
    poisson: tuple[PoissonInput, ...] = ()
    neuron: str = "lif"
    synapse: str = "conductance"

    def __post_init__(self):
        object.__setattr__(self, "populations", tuple(self.populations))
        object.__setattr__(self, "projections", tuple(self.projections))
        object.__setattr__(self, "poisson", tuple(self.poisson))
        if self.neuron not in NEURON_MODELS:
            raise ValueError(f"Network.neuron must be one of {NEURON_MODELS}, got {self.neuron!r}")
        if self.synapse not in SYNAPSE_MODELS:
            raise ValueError(f"Network.synapse must be one of {SYNAPSE_MODELS}, got {self.synapse!r}")
        names = [p.name for p in self.populations]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"Network.populations: need unique names, got {names}")
        sizes = {p.name: p.n for p in self.populations}
        proj_names = [p.name for p in self.projections]
        if len(set(proj_names)) != len(proj_names):
            raise ValueError(f"Network.projections: need unique names, got {proj_names}")
        for proj in self.projections:
            for end, n in ((proj.pre, proj.n_pre), (proj.post, proj.n_post)):
                if sizes.get(end) != n:
                    raise ValueError(f"Projection {proj.name!r}: population {end!r} of {n} neurons "
                                     "is not in the network")
        for inp in self.poisson:
            self.population(inp.population)
        if self.synapse == "conductance":
            for proj in self.projections:
                if np.any(proj.weight < 0):
                    raise ValueError(f"Projection {proj.name!r}: conductance weights (nS) must be >= 0; "
                                     "inhibition comes from receptor='inh'")
            for inp in self.poisson:
                if inp.weight < 0:
                    raise ValueError(f"PoissonInput onto {inp.population!r}: conductance weight must be >= 0")

    def population(self, name: str) -> Population:
        """The Population called `name`; KeyError naming the known ones if there is none."""
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"no population {name!r}; the network has {[p.name for p in self.populations]}")

    @property
    def n_neurons(self) -> int:
        """Number of neurons over all populations."""
        return sum(p.n for p in self.populations)

    @property
    def offsets(self) -> dict[str, int]:
        """Global index of each population's first neuron."""
        starts = np.concatenate([[0], np.cumsum([p.n for p in self.populations])[:-1]])
        return {p.name: int(s) for p, s in zip(self.populations, starts)}

    def save_network(self, path):
        """Write SONATA nodes and edges (HDF5) to `path`; see neurons.io.write_sonata_network."""
        from .io import write_sonata_network

        return write_sonata_network(path, self)
