"""tmsim.neurons: jitted spiking networks with STDP and BDNF modulation (in development)."""
