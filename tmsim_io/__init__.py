"""tmsim_io: file output shared by efield, neurons and coupling, which import it and nothing of
each other through it. Files are written whole or not at all (a temporary file beside the
target, then a rename); a full disk is one OSError naming the target; figures are saved
without touching pyplot's state or the user's backend."""

from .atomic import atomic_hdf5, atomic_output, remove_stale_temporaries
from .figures import figure, save_figure, write_json

__all__ = ["atomic_hdf5", "atomic_output", "figure", "remove_stale_temporaries", "save_figure", "write_json"]
