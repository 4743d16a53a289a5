"""Scenario parameters: what sets the depressed and Val66Met patches apart from the healthy one."""

import numpy as np
import pytest

import coupling


@pytest.fixture(scope="module")
def patches(four_shells):
    return {name: coupling.cortical_patch(four_shells, [0.0, 0.0, 95.0], 6.0, 120, seed=3,
                                          model=coupling.scenario_model(name))
            for name in coupling.SCENARIOS}


def test_depression_weakens_only_excitatory_to_excitatory_synapses(patches):
    healthy, depressed = patches["healthy"].network, patches["depressed"].network
    for a, b in zip(healthy.projections, depressed.projections):
        assert a.name == b.name
        np.testing.assert_array_equal(a.pre_ids, b.pre_ids)        # same synapses
        intracortical = a.plasticity is not None and not a.pre.startswith("AFF")
        factor = 0.75 if intracortical else 1.0
        np.testing.assert_allclose(b.weight, factor * a.weight)


def test_basal_bdnf_and_release_of_each_scenario(patches):
    rule = lambda name: next(p.plasticity for p in patches[name].network.projections if p.plasticity)
    healthy, healthy_met, depressed, met = (rule(n).bdnf for n in coupling.SCENARIOS)
    assert healthy.steady_state()[-1] == pytest.approx(1.0)         # half-saturation
    assert depressed.steady_state()[-1] == pytest.approx(0.5)
    assert (healthy.release_factor, healthy_met.release_factor, depressed.release_factor,
            met.release_factor) == (1.0, 0.75, 1.0, 0.75)
    assert met.basal_per_s == depressed.basal_per_s and healthy_met.basal_per_s == healthy.basal_per_s


def test_unknown_scenario_is_named():
    with pytest.raises(ValueError, match="anxious"):
        coupling.scenario_model("anxious")
