"""What a benchmark ran on: machine, device, versions and the commit, for its JSON record."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment(packages, changed_paths=()) -> dict:
    """Machine, JAX device, versions of `packages`, the commit and whether `changed_paths`
    (relative to the repository) had uncommitted changes."""
    import jax

    versions = {}
    for name in ("tmsim", "jax", *packages):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            check=False).stdout.strip() or None
    changed = subprocess.run(git + ["status", "--porcelain", "--", *changed_paths], capture_output=True,
                             text=True, check=False).stdout.strip() if changed_paths else ""
    return {"commit": commit, "uncommitted_changes": bool(changed),
            "machine": platform.machine(), "processor": cpu_model(), "cpu_count": os.cpu_count(),
            "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
            "versions": versions}


def device_label(env: dict) -> str:
    """'cpu2' for a 2-core CPU, else JAX's backend name; used in result file names."""
    return env["jax_backend"] if env["jax_backend"] != "cpu" else f"cpu{env['cpu_count']}"
