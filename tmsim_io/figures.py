"""Figures and small text files, written through atomic_output. matplotlib is imported when a
function is called."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_output


def figure(path=None, **kwargs):
    """A new matplotlib Figure (kwargs as for Figure: figsize, constrained_layout, ...). For a
    file (path given) a standalone Figure, outside pyplot: no window, no backend switch, nothing
    to close; without a path, a pyplot figure, which a notebook or a plt.show() displays."""
    if path is None:
        import matplotlib.pyplot as plt

        return plt.figure(**kwargs)
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save_figure(fig, path, *, dpi: int = 110) -> Path:
    """Write `fig` to `path` (format from the suffix, default PNG) atomically; a pyplot figure
    is closed afterwards. Returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    if getattr(fig, "number", None) is not None:      # made by pyplot
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def write_json(path, data, **kwargs) -> Path:
    """Write `data` as indented JSON (kwargs as for json.dumps, e.g. default=float) atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, **kwargs) + "\n")
    return path
