"""Healthy, depressed and Val66Met cortical patches: the parameters that set them apart.

Depression is modelled through BDNF and the connectivity it maintains (the neurotrophic
hypothesis: Duman & Monteggia 2006, Biol Psychiatry 59:1116):

- Basal BDNF. Healthy: tonic release that holds BDNF at its half-saturation level
  (b = 1, g(b) = 0.5 of the full gate). Depressed: half of it (serum BDNF is lower in
  untreated depression, effect size about -0.9: Sen et al. 2008, Biol Psychiatry 64:527;
  Molendijk et al. 2014, Mol Psychiatry 19:791), b = 0.5.
- Connectivity. Depressed: excitatory-to-excitatory weights at 0.75 of healthy (fewer
  synapses and lower synaptic gene expression in the dorsolateral prefrontal cortex of
  depressed subjects: Kang et al. 2012, Nat Med 18:1413).
- Val66Met: activity-dependent release at 0.75 of normal (Egan et al. 2003, Cell 112:257;
  Chen et al. 2004, J Neurosci 24:4401): "val66met" on the healthy parameters (healthy
  carriers, as in Cheeran et al. 2008, J Physiol 586:5717), "depressed_val66met" on the
  depressed ones.

The factors are documented assumptions of the model, chosen inside the reported ranges.
"""

from __future__ import annotations

from dataclasses import replace

import neurons

from .patch import PatchModel

HEALTHY_BASAL_PER_S = 1.0 / 1800.0
"""Basal release that holds b at 1 (its half-saturation level) with the 30 min decay."""

DEPRESSED_BDNF_FACTOR = 0.5
DEPRESSED_WEIGHT_FACTOR = 0.75
VAL66MET_RELEASE_FACTOR = 0.75

SCENARIOS = ("healthy", "val66met", "depressed", "depressed_val66met")


def scenario_model(name: str, base: PatchModel = PatchModel()) -> PatchModel:
    """The PatchModel of scenario `name` (one of SCENARIOS) built
    on `base` (whose plasticity must be a neurons.ThreeFactorSTDP)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {SCENARIOS}")
    rule = base.plasticity
    if not isinstance(rule, neurons.ThreeFactorSTDP):
        raise ValueError("scenario_model: the base model's plasticity must be a neurons.ThreeFactorSTDP")
    bdnf = replace(rule.bdnf, basal_per_s=HEALTHY_BASAL_PER_S)
    ee = base.ee_weight_factor
    if name.startswith("depressed"):
        bdnf = replace(bdnf, basal_per_s=HEALTHY_BASAL_PER_S * DEPRESSED_BDNF_FACTOR)
        ee = base.ee_weight_factor * DEPRESSED_WEIGHT_FACTOR
    if name.endswith("val66met"):
        bdnf = replace(bdnf, release_factor=VAL66MET_RELEASE_FACTOR)
    return replace(base, ee_weight_factor=ee, plasticity=replace(rule, bdnf=bdnf))
