"""tmsim.coupling: the E-field of each pulse meets the network; pipeline and command line."""
