"""A cortical patch under the coil: neurons in the grey matter, their column axes, a network.

Populations (`PatchModel.layers`) sit at relative cortical depths (0 pial surface, 1 GM/WM
interface): layer 2/3 and layer 5 pyramidal cells with their basket cells, and a population
of cortico-cortical afferents whose activation by a pulse gives the synchronous input waves
(I waves). Each neuron's column axis is the outward normal of the pial surface where it
sits (radial in a sphere). Neurons are spread over the pial nodes within the patch radius
in proportion to the area each node stands for, at their layer's depth, each displaced
uniformly within a tangential disc of its node's area.

Connectivity is distance-dependent over those positions, p(d) = p0 exp(-d^2 / 2 sigma^2)
(lateral spread sigma_mm), with p0 set per projection so that a neuron receives on average
k_exc excitatory and k_inh inhibitory synapses whatever the patch size (the patch is a
sparse sample of the cortex: about 10^5 neurons per mm^2 in reality). Neurons are
conductance-based LIF with a Poisson background; excitatory-to-excitatory synapses and the
afferents' synapses onto excitatory cells carry BDNF-gated calcium-threshold plasticity
(neurons.CalciumRule in neurons.ThreeFactorSTDP). Parameter values are listed with their
sources or as assumptions in `PatchModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.spatial import cKDTree

import efield
import neurons

from .activation import DEFAULT_CELL_CLASSES, CellClass


@dataclass(frozen=True)
class Layer:
    """One population: name, share of the patch's neurons, relative cortical depth (0 pial,
    1 GM/WM), cell class (a key of activation.DEFAULT_CELL_CLASSES), excitatory or not, and
    the number of waves it fires when a pulse activates it (1: the D wave only)."""

    name: str
    fraction: float
    depth: float
    cell_class: str
    excitatory: bool
    waves: int = 1


DEFAULT_LAYERS = (
    Layer("L23E", 0.32, 0.25, "L2/3 PC", True),
    Layer("L23I", 0.08, 0.25, "basket", False),
    Layer("L5E", 0.32, 0.65, "L5 PC", True),
    Layer("L5I", 0.08, 0.65, "basket", False),
    Layer("AFF", 0.40, 0.5, "I-wave afferent", True, waves=3),
)
"""Layer 2/3 at a quarter and layer 5 at two thirds of the cortical depth; 80 % excitatory
within each layer (Potjans & Diesmann 2014); afferents (the axons of the I-wave circuits,
the elements with the lowest thresholds) fire three volleys (I1-I3 at 1.4 ms intervals, Di
Lazzaro et al. 2012) and drive L2/3 and L5 but receive no input of the patch. The afferents
are a third of the patch's neurons (the project's choice: they are axons, cheap to simulate),
so that their recruitment is graded: in the default 500-neuron patch a pulse at 80 % RMT
activates tens of them (validation/recruitment.py)."""


WEIGHT_UNIT_FIELDS = ("w_min", "w_max", "gamma_p_per_s", "gamma_d_per_s", "A_plus", "A_minus", "A2_plus",
                      "A3_plus", "A2_minus", "A3_minus")
"""Fields of the plasticity rules in weight units (PairSTDP, TripletSTDP, CalciumRule)."""


@dataclass(frozen=True)
class PatchModel:
    """Network parameters of a patch (units: nS, pA, pF, mV, ms, mm, Hz).

    Neurons: LIF with exponential conductances (C 250 pF, g_leak 12.5 nS: tau_m 20 ms;
    rest -70 mV, threshold -50 mV, reset -65 mV, refractory 2 ms; Potjans & Diesmann 2014),
    tau_exc 2 ms, tau_inh 8 ms (AMPA / GABA_A decay). In-degrees k_exc, k_inh over the
    sampled neurons with lateral spread sigma_mm (assumed: the patch samples the cortex
    sparsely, so the spread is wider than a column's 0.3 mm); weights w_exc_nS, w_inh_nS and
    the afferents' w_aff_nS (excitatory-to-excitatory weights are w_exc_nS times
    ee_weight_factor, see coupling.scenario). w_aff_nS = 0.2 is the project's choice, made with
    the afferents' activation thresholds (coupling.activation) on validation/mep_sources.py
    (network seeds 900-902): the MEP at the test intensity (150 % RMT) is then mostly the I
    waves' trans-synaptic output (57-76 %) and moves with the afferent weights (d ln MEP /
    d ln w 1.3-2.4), while a pulse at 80 % RMT still recruits 22-39 afferents (26-36 on
    seeds 0-2, validation/recruitment.py). With 0.1 nS and
    the former thresholds the MEP was the D wave alone (direct activation of L5 cells; without
    it no L5 spike above background), and no plastic weight could move it much (d ln MEP /
    d ln w 0.1-0.2 for the afferents). Delays 1.5 ms excitatory, 0.8 ms inhibitory (Potjans &
    Diesmann). Background: n_background Poisson sources at background_Hz with weight
    w_background_nS onto every neuron; the afferents fire at afferent_Hz. plasticity: rule
    of the excitatory-to-excitatory synapses, and of the afferents' synapses onto excitatory
    cells if plastic_afferents (None: static). thickness_mm: cortical thickness used where the
    mesh has no white matter (a sphere head).

    Default rule: BDNF-gated calcium-threshold plasticity (neurons.CalciumRule in
    neurons.ThreeFactorSTDP, soft bounds 0-3 nS). Synaptic calcium has a fast part (1 per
    presynaptic spike, 0.5 per postsynaptic one, 20 ms) and a slow NMDA-like presynaptic part
    (0.3 per spike, 200 ms; the slow NMDA component of Shouval et al. 2002, PNAS 99:10831). An
    afferent activation (three volleys, peak 3.8) depresses (above theta_d = 2.75); 50 Hz
    bursts, and 10 Hz trains through the slow part, summate above theta_p = 3.0 and
    potentiate; the sliding threshold (15 s, 10 Hz) rises with the presynaptic rate, so that
    sustained stimulation (cTBS, 1 Hz) stays below it. gamma_p / gamma_d = 11 (4.4 / 0.4 nS/s)
    is our calibration: with a single afferent synapse at basal BDNF and its 2 Hz spontaneous
    firing it puts the balance of LTP and LTD near zero at imTBS (5 s trains), so that iTBS
    (2 s trains) potentiates, cTBS and 1 Hz depress (Huang et al. 2005; Chen et al. 1997), and
    10 Hz trains (4 s, 26 s gaps) potentiate, most where the postsynaptic cell fires with each
    pulse (Maeda et al. 2000, Clin Neurophysiol 111:800: facilitation after 10 Hz); the
    thresholds and gamma_d = 0.4 nS/s are assumptions that keep spontaneous activity from
    changing the weights much. In the former 150-neuron patch (before commit 3f53e80) imTBS
    depressed, where the single synapse breaks even (benchmarks/RESULTS.md). Measured since:
    isolated afferent activations every 0.5 s potentiate (the 2 Hz spontaneous rate leaves
    the sliding theta_p near 3.6, below the 3.8 peak; a 1e-4 nS afferent synapse reached
    0.2-0.3 nS over 20 such pulses, commit e699553), so the balance above is not what the rule
    does at its afferents; the calibration issue revisits it.
    Plastic afferent synapses: TBS changes the I-wave circuits' input to corticospinal cells
    (cTBS suppresses the I1 wave: Di Lazzaro et al. 2005, J Physiol 565:945). They follow the
    same rule scaled to their weight (`afferent_rule`: bounds and rates times w_aff_nS /
    w_exc_nS), so that an afferent synapse changes by the same fraction of its weight as an
    excitatory-to-excitatory one in the same calcium (the project's assumption).
    Activity-dependent BDNF release at 0.2 per s per unit of spike calcium above threshold
    (neurons.BDNF; our calibration; theta bursts raise BDNF secretion: Aicardi et al. 2004,
    PNAS 101:15788): a 600-pulse iTBS session at 120 % RMT about doubles the BDNF of a
    depressed patch (0.5 -> 1) after the 3-minute release delay, and 50 minutes later it is
    still 0.1-0.13 above basal (30 min decay); the spontaneous activity of a sham session, with
    few bursts, releases about a quarter of that (validation/depression.py, on the former
    150-neuron sphere patch).
    Synaptic tagging and capture (neurons.bdnf): a change is expressed at once as early phase
    and lasts in the share that BDNF captures while its tag lives (tau_tag 1 h: early LTP of a
    weak tetanus decays within about 3 h, and its tag captures proteins made up to 1-2 h
    later; Frey & Morris 1997, Nature 385:533), so the BDNF a session releases acts on the
    session's own changes. Capture needs BDNF above capture_threshold = 1.25 (neurons.bdnf;
    the project's assumption): above the healthy basal level (1) and what the spontaneous
    activity of a sham session adds, so that the early change of a single session fades within
    a few hours unless the BDNF of strong or spaced stimulation consolidates it (single-session
    after-effects last about an hour: Huang et al. 2005; spaced sessions accumulate:
    Nettekoven et al. 2014, J Neurosci 34:6849).
    """

    layers: tuple[Layer, ...] = DEFAULT_LAYERS
    k_exc: int = 60
    k_inh: int = 20
    sigma_mm: float = 3.0
    w_exc_nS: float = 1.0
    w_inh_nS: float = 4.0
    w_aff_nS: float = 0.2
    ee_weight_factor: float = 1.0
    delay_exc_ms: float = 1.5
    delay_inh_ms: float = 0.8
    n_background: int = 100
    background_Hz: float = 8.0
    w_background_nS: float = 2.5
    afferent_Hz: float = 2.0
    params: neurons.NeuronParams = neurons.NeuronParams(
        C_pF=250.0, g_leak_nS=12.5, E_leak_mV=-70.0, v_threshold_mV=-50.0, v_reset_mV=-65.0, t_ref_ms=2.0,
        tau_exc_ms=2.0, tau_inh_ms=8.0, E_exc_mV=0.0, E_inh_mV=-80.0)
    plasticity: object = field(default_factory=lambda: neurons.ThreeFactorSTDP(
        neurons.CalciumRule(gamma_p_per_s=4.4, gamma_d_per_s=0.4, theta_p=3.0, theta_d=2.75, C_post=0.5,
                            C_pre_slow=0.3, tau_slow_ms=200.0, sliding_tau_ms=15000.0, sliding_rate_Hz=10.0,
                            w_max=3.0),
        neurons.BDNF(release_rate_per_s=0.2), tau_tag_ms=3.6e6, capture_threshold=1.25))
    thickness_mm: float = 2.5
    plastic_afferents: bool = True

    def __post_init__(self):
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"PatchModel.layers: need unique population names, got {names}")
        for layer in self.layers:
            if layer.cell_class not in DEFAULT_CELL_CLASSES:
                raise ValueError(f"PatchModel.layers: {layer.name!r} has unknown cell_class "
                                 f"{layer.cell_class!r}; known: {sorted(DEFAULT_CELL_CLASSES)}")
            if not 0 <= layer.depth <= 1 or not layer.fraction > 0 or layer.waves < 1:
                raise ValueError(f"PatchModel.layers: {layer.name!r} needs depth in [0, 1], fraction > 0, "
                                 "waves >= 1")
        for name in ("k_exc", "k_inh", "sigma_mm", "w_exc_nS", "w_inh_nS", "thickness_mm",
                     "ee_weight_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PatchModel.{name} must be > 0, got {getattr(self, name)}")

    def afferent_rule(self):
        """The rule of the plastic afferent synapses: `plasticity` with its weight bounds and
        amplitudes or rates (weight units) scaled by w_aff_nS / w_exc_nS (None if plasticity
        is None)."""
        rule = self.plasticity
        if rule is None:
            return None
        inner = rule.stdp if isinstance(rule, neurons.ThreeFactorSTDP) else rule
        factor = self.w_aff_nS / self.w_exc_nS
        inner = replace(inner, **{name: getattr(inner, name) * factor for name in WEIGHT_UNIT_FIELDS
                                  if hasattr(inner, name)})
        return replace(rule, stdp=inner) if isinstance(rule, neurons.ThreeFactorSTDP) else inner


@dataclass(frozen=True, eq=False)
class CorticalPatch:
    """A network placed in the cortex. network: neurons.Network (one population per layer);
    positions_mm, axes: population -> (n, 3) positions (mm) and unit column axes (outward);
    cell_classes: population -> CellClass; waves: population -> waves per activation;
    thresholds_V_per_m: population -> (n,) single-cell thresholds drawn once; target_mm: the
    pial point the patch is centred on; radius_mm."""

    network: neurons.Network
    positions_mm: dict
    axes: dict
    cell_classes: dict
    waves: dict
    thresholds_V_per_m: dict
    target_mm: np.ndarray
    radius_mm: float

    @property
    def populations(self) -> tuple[str, ...]:
        """Names of the patch's populations, in the network's order."""
        return tuple(p.name for p in self.network.populations)


def cortical_patch(mesh: efield.TetMesh, centre, radius_mm: float = 10.0, n_neurons: int = 1000, *,
                   model: PatchModel = PatchModel(), seed: int = 0,
                   cell_classes: dict[str, CellClass] | None = None) -> CorticalPatch:
    """Place `n_neurons` in the grey matter within radius_mm of the cortex under `centre` (a
    point in mm or an EEG label of the mesh) and connect them (see the module docstring).
    cell_classes: overrides of activation.DEFAULT_CELL_CLASSES by name."""
    if n_neurons < 2 * len(model.layers):
        raise ValueError(f"cortical_patch: n_neurons={n_neurons} is too small for {len(model.layers)} layers")
    from efield.cortex import cortical_layer

    classes = {**DEFAULT_CELL_CLASSES, **(cell_classes or {})}
    rng = np.random.default_rng(seed)
    shares = np.array([layer.fraction for layer in model.layers])
    counts = np.maximum(1, np.round(n_neurons * shares / shares.sum()).astype(int))
    has_white = bool(np.any(mesh.tags == 1))
    populations, positions, axes = [], {}, {}
    for layer, n in zip(model.layers, counts):
        depth = dict(depth=layer.depth) if has_white else dict(depth_mm=layer.depth * model.thickness_mm)
        sheet = cortical_layer(mesh, centre, radius_mm, **depth)
        pick = rng.choice(len(sheet), size=n, p=sheet.areas_mm2 / sheet.areas_mm2.sum())
        normal = sheet.normals[pick]
        # uniform over a disc of the node's area, in the tangent plane
        direction = rng.normal(size=(n, 3))
        direction -= np.sum(direction * normal, axis=1, keepdims=True) * normal
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        reach = np.sqrt(sheet.areas_mm2[pick] / np.pi * rng.random(n))
        positions[layer.name], axes[layer.name] = sheet.points_mm[pick] + reach[:, None] * direction, normal
        populations.append(neurons.Population(
            layer.name, int(n), model.params, v_init_mV=rng.uniform(-70.0, -55.0, n),
            positions_mm=positions[layer.name], rate_Hz=model.afferent_Hz if layer.waves > 1 else None))
    network = neurons.Network(tuple(populations), _projections(model, populations, rng),
                              _background(model, populations), neuron="lif", synapse="conductance")
    thresholds = {layer.name: classes[layer.cell_class].draw_thresholds(int(n), rng)
                  for layer, n in zip(model.layers, counts)}
    return CorticalPatch(network, positions, axes, {la.name: classes[la.cell_class] for la in model.layers},
                         {la.name: la.waves for la in model.layers}, thresholds, sheet.target_mm,
                         float(radius_mm))


def _projections(model: PatchModel, populations, rng) -> list:
    """Distance-dependent projections onto every population but the afferents, with p0 set so
    that the expected in-degree is k_exc (summed over excitatory sources) or k_inh."""
    layers = {layer.name: layer for layer in model.layers}
    targets = [p for p in populations if layers[p.name].waves == 1]
    out = []
    for kind, k, receptor in (("exc", model.k_exc, "exc"), ("inh", model.k_inh, "inh")):
        sources = [p for p in populations if layers[p.name].excitatory == (kind == "exc")]
        for post in targets:
            # expected in-degree at p0 = 1, per source population, averaged over post neurons
            reach = [_gaussian_sum(pre.positions_mm, post.positions_mm, model.sigma_mm) for pre in sources]
            p0 = min(1.0, k / max(sum(reach), 1e-12))
            for pre in sources:
                afferent = layers[pre.name].waves > 1
                plastic = (kind == "exc" and layers[post.name].excitatory
                           and (model.plastic_afferents or not afferent))
                weight = model.w_aff_nS if afferent else (model.w_exc_nS if kind == "exc" else model.w_inh_nS)
                weight *= model.ee_weight_factor if plastic and not afferent else 1.0
                out.append(neurons.connect(
                    pre, post, neurons.DistanceDependent(p0, model.sigma_mm), weight=weight,
                    delay_ms=model.delay_exc_ms if kind == "exc" else model.delay_inh_ms, receptor=receptor,
                    seed=int(rng.integers(2**63)), plasticity=_rule(model, plastic, afferent)))
    return out


def _rule(model: PatchModel, plastic: bool, afferent: bool):
    """The plasticity rule of a projection (None: static)."""
    if not plastic:
        return None
    return model.afferent_rule() if afferent else model.plasticity


def _gaussian_sum(pre_mm: np.ndarray, post_mm: np.ndarray, sigma_mm: float) -> float:
    """Mean over post neurons of sum over pre neurons of exp(-d^2 / 2 sigma^2) (d < 4 sigma)."""
    near = cKDTree(pre_mm).sparse_distance_matrix(cKDTree(post_mm), 4.0 * sigma_mm, output_type="coo_matrix")
    return float(np.exp(-np.square(near.data) / (2.0 * sigma_mm**2)).sum() / len(post_mm))


def _background(model: PatchModel, populations) -> list:
    return [neurons.PoissonInput(p.name, model.n_background, model.background_Hz, model.w_background_nS)
            for p in populations if p.rate_Hz is None]
