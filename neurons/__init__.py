"""tmsim.neurons: JAX-jitted spiking networks of point neurons with sparse delayed synapses.

Units: ms, mV, nS, pA, pF; positions in mm. State is float32 on whatever device JAX picks.
"""

from .bdnf import BDNF, ThreeFactorSTDP
from .calcium import CalciumRule
from .connectivity import (DistanceDependent, FixedInDegree, FixedProbability, FixedTotalNumber, Projection,
                           connect)
from .engine import NetworkState
from .inputs import CurrentInjection
from .io import read_sonata_spikes, read_weight_snapshots, write_sonata_network, write_sonata_spikes
from .microcircuit import potjans_diesmann
from .models import brunel, coba, cuba, song_stdp
from .network import Network, NeuronParams, PoissonInput, Population
from .plasticity import PairSTDP, TripletSTDP
from .rest import rest
from .result import SimulationResult, Traces
from .simulate import frozen, initial_state, simulate
from .spikes import SpikeTrains

__all__ = [
    "BDNF", "CalciumRule",
    "CurrentInjection", "DistanceDependent", "FixedInDegree", "FixedProbability", "FixedTotalNumber",
    "Network",
    "NetworkState", "NeuronParams", "PairSTDP", "PoissonInput", "Population", "Projection",
    "SimulationResult", "SpikeTrains", "ThreeFactorSTDP", "Traces", "TripletSTDP", "brunel", "coba",
    "connect", "cuba", "frozen", "initial_state", "potjans_diesmann", "read_sonata_spikes",
    "read_weight_snapshots",
    "rest", "simulate", "song_stdp",
    "write_sonata_network", "write_sonata_spikes",
]
