"""Ensembles and parameter sweeps on Dask: `tmsim sweep` and `run_sweep`.

A sweep is a base run configuration and axes of values; its runs are the product of the axes
(and of the `[[zip]]` groups, whose axes vary together), each run a `tmsim session` or
`tmsim run` of one configuration (or a caller's own run function), executed on a Dask cluster:
a LocalCluster of single-threaded worker processes by default, or any existing cluster.

The sweep file (TOML)::

    kind = "session"                 # "session" (tmsim session, default) or "run" (tmsim run: a course)
    base = "config.toml"             # a run configuration file (relative to the sweep file), or
    [base]                           #   the tables of one inline, in either TOML form:
    patch.n_neurons = 40             #   dotted keys ...
    [base.session]                   #   ... or sub-tables
    after_s = 0.05

    [axes]                           # each a list of values of a run configuration key
    "protocol.name" = ["itbs", "sham-itbs"]
    "protocol.intensity" = ["70% RMT", "90% RMT"]
    network_seeds = [0, 1]           # -> patch.seed (positions, wiring, thresholds)
    noise_seeds = [0, 1, 2]          # -> session.seed (background activity)

    [[zip]]                          # optional, repeatable: axes that vary together (same lengths)
    "coil.distance_mm" = [2.0, 6.0]
    "head.max_edge_mm" = [8.0, 10.0]

    [report]                         # optional: defaults of `tmsim report`
    control = "protocol.name=sham-itbs"
    metrics = ["mep_change.0.0"]

Quote the axis keys ("protocol.name") or write them as dotted keys (protocol.name = [...]); both
are read the same. The runs are ordered as the product of the axes in file order, then the zip
groups, then network_seeds, then noise_seeds (the last varies fastest). Every value of every
axis, and then every run's configuration as a whole (coupling.config.check_config, the coil and
head files), is checked before anything runs; a bad one is a ConfigError naming the sweep file
and the key.

Results, in the output folder DIR:

- `runs/<run_id>/`: one folder per finished run (config.toml, what `tmsim session` or `tmsim run`
  writes, and run.json: its row of the table). It is written into a temporary folder beside it
  (`runs/.<run_id>.<pid>.<hex>.tmp`) and renamed when complete, so a folder is there whole or
  not at all. run_id is a hash of the run's configuration (output.folder aside), its kind and
  run function: rerunning a sweep, or a grown one, skips the runs whose folders exist.
- `runs.parquet`: one row per run (pandas.read_parquet): `run` (its index), `run_id`, the axis
  values and both seeds under their config keys (`protocol.name`, `patch.seed`,
  `session.seed`, ...), `status` ("done" or "failed"), `error` (empty when done), `wall_s`, and
  the run's summary numbers flattened to columns with dotted names (`mep_before`,
  `mep_change.0.0`, `mean_weights_nS.L23E_to_L23E.after_stimulation`, ...). Rewritten
  atomically as runs finish. `errors/<run_id>.txt` holds the traceback of a failed run.
- `sweep.toml`: what was run (the base configuration in full, the axes, zip groups, report).

A run that raises is recorded with its error and the others go on; a worker process that dies
has its run rescheduled by Dask on another worker (up to the scheduler's allowed-failures), and
since a run's folder appears only by one rename, no result is lost or counted twice. Failed
runs are run again when the sweep is rerun.

dask, distributed and pandas are imported when a sweep runs, so `import coupling` stays fast.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import os
import secrets
import shutil
import time
import tomllib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import SCHEMA, ConfigError, RunConfig, load_config

KINDS = ("session", "run")
SEED_AXES = {"network_seeds": "patch.seed", "noise_seeds": "session.seed"}
"""Axes of seeds and the config keys they set."""
SEED_KEYS = tuple(SEED_AXES.values())
TOP_KEYS = ("kind", "base", "axes", "zip", "report")
REPORT_KEYS = ("control", "metrics")
META_COLUMNS = ("run", "run_id", "status", "error", "wall_s")
TABLE = "runs.parquet"
RUNS = "runs"
ERRORS = "errors"
SWEEP_FILE = "sweep.toml"
RECORD = "run.json"
COMPILE_CACHE = ".jax_cache"
"""Folder in DIR of JAX's persistent compilation cache, shared by the workers (see run_sweep)."""


@dataclass(frozen=True)
class Sweep:
    """A checked sweep: kind ("session" or "run"), the base RunConfig, axes {config key: values}
    (seeds under patch.seed and session.seed), zip groups (tuples of such dicts, each one axis
    whose keys vary together) and report settings ({"control": ..., "metrics": [...]})."""

    base: RunConfig = field(default_factory=RunConfig)
    axes: Mapping[str, tuple] = field(default_factory=dict)
    zip: tuple = ()
    kind: str = "session"
    report: Mapping[str, Any] = field(default_factory=dict)
    source: str = "sweep"

    @property
    def keys(self) -> list[str]:
        """The config keys that vary (table columns), in run order."""
        return [*(k for k in self.axes if k not in SEED_KEYS), *(k for group in self.zip for k in group),
                *(k for k in SEED_KEYS if k in self.axes)]

    def runs(self) -> list[dict[str, Any]]:
        """The values of each run, {config key: value}, in run order (seeds last)."""
        plain = [[{k: v} for v in self.axes[k]] for k in self.axes if k not in SEED_KEYS]
        zipped = [[dict(zip(group, values)) for values in zip(*group.values())] for group in self.zip]
        seeds = [[{k: v} for v in self.axes[k]] for k in SEED_KEYS if k in self.axes]
        return [{k: v for part in combo for k, v in part.items()}
                for combo in itertools.product(*plain, *zipped, *seeds)]

    def configs(self) -> list[RunConfig]:
        """The RunConfig of each run, in run order (unchecked as a whole: see check)."""
        return [self.base.with_values(values, self.source) for values in self.runs()]

    def check(self, configs=None):
        """Check every run's configuration as a whole (check_config with the course for kind
        "run"; coil and head files): ConfigError naming the sweep, the run and the key."""
        from .prepare import check_inputs

        seen = {}
        for index, (values, config) in enumerate(zip(self.runs(), configs or self.configs())):
            key = config.with_values({k: self.base_value(k) for k in SEED_KEYS if k in self.axes}).to_toml()
            if key in seen:             # the seeds do not change what is checked
                continue
            seen[key] = index
            try:
                check_inputs(config, course=self.kind == "run")
            except ConfigError as err:
                label = ", ".join(f"{k} = {v!r}" for k, v in values.items())
                raise ConfigError(f"{self.source}: run {index} ({label}): {err}") from None

    def base_value(self, key: str):
        table, name = key.split(".")
        return getattr(getattr(self.base, table), name)

    def to_toml(self) -> str:
        """The sweep as TOML that load_sweep reads back equal (the base configuration in full)."""
        base = tomllib.loads(self.base.to_toml())
        lines = [f"kind = {_toml_value(self.kind)}", ""]
        for table, keys in base.items():
            lines.append(f"[base.{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
            lines.append("")
        lines.append("[axes]")
        names = {v: k for k, v in SEED_AXES.items()}
        lines += [f"{names.get(k, _toml_value(k))} = {_toml_value(list(v))}" for k, v in self.axes.items()]
        for group in self.zip:
            lines += ["", "[[zip]]"]
            lines += [f"{_toml_value(k)} = {_toml_value(list(v))}" for k, v in group.items()]
        if self.report:
            lines += ["", "[report]"] + [f"{k} = {_toml_value(v)}" for k, v in self.report.items()]
        return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)        # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, float) and not math.isfinite(v):
        return ("-" if v < 0 else "") + ("nan" if math.isnan(v) else "inf")
    return repr(v)


def _flat(table: Mapping, where: str, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of a TOML table whose keys are written dotted, quoted or as
    sub-tables; ConfigError naming `where` for a key that is not TABLE.KEY."""
    flat = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flat(value, where, key + "."))
        else:
            flat[key] = value
    for key in flat:
        table_name, _, name = key.partition(".")
        if table_name not in SCHEMA:
            raise ConfigError(f"{where}: {key!r}: unknown table [{table_name}]; known: {sorted(SCHEMA)}")
        if not name or name not in SCHEMA[table_name]:
            raise ConfigError(f"{where}: unknown key {key!r}; known in [{table_name}]: "
                              f"{sorted(SCHEMA[table_name])}")
    return flat


def _axis(base: RunConfig, key: str, values, where: str) -> tuple:
    """The checked values of one axis: a non-empty list, each value valid for `key`."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {key}: expected a non-empty list of values, got {values!r}")
    for value in values:
        base.with_values({key: value}, where)
    frozen = [json.dumps(v, sort_keys=True) for v in values]
    if len(set(frozen)) != len(frozen):
        raise ConfigError(f"{where}: {key}: a value is listed twice in {values!r}")
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def sweep_from_dict(data: Mapping, source: str = "sweep", *, root: Path | None = None) -> Sweep:
    """A Sweep from the tables of a sweep file (see the module docstring); `root`: the folder
    against which `base = "file.toml"` is resolved. ConfigError naming `source` and the key."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; a sweep file holds {list(TOP_KEYS)}")
    kind = data.get("kind", "session")
    if kind not in KINDS:
        raise ConfigError(f"{source}: kind: expected one of {list(KINDS)}, got {kind!r}")
    base_spec = data.get("base", {})
    if isinstance(base_spec, str):
        path = Path(base_spec)
        path = path if path.is_absolute() or root is None else root / path
        base = load_config(path, course=kind == "run")
    elif isinstance(base_spec, dict):
        base = RunConfig().with_values(_flat(base_spec, f"{source}: [base]"), f"{source}: [base]")
    else:
        raise ConfigError(f"{source}: base: expected a config file name or a [base] table, got {base_spec!r}")
    axes_spec = data.get("axes", {})
    if not isinstance(axes_spec, dict):
        raise ConfigError(f"{source}: axes must be a table ([axes])")
    seeds = {SEED_AXES[k]: axes_spec[k] for k in SEED_AXES if k in axes_spec}
    axes = {}
    for key, values in _flat({k: v for k, v in axes_spec.items() if k not in SEED_AXES},
                             f"{source}: [axes]").items():
        if key in SEED_KEYS:
            name = next(n for n, k in SEED_AXES.items() if k == key)
            raise ConfigError(f"{source}: [axes] {key}: give the seeds as {name} (they are kept apart from "
                              "the conditions the report compares)")
        axes[key] = _axis(base, key, values, f"{source}: [axes]")
    for key, values in seeds.items():
        name = next(n for n, k in SEED_AXES.items() if k == key)
        axes[key] = _axis(base, key, values, f"{source}: [axes] {name} ({key})")
    zips = data.get("zip", [])
    if not isinstance(zips, list) or not all(isinstance(g, dict) for g in zips):
        raise ConfigError(f"{source}: zip must be an array of tables ([[zip]])")
    groups, seen = [], set(axes)
    for number, spec in enumerate(zips, 1):
        where = f"{source}: [[zip]] {number}"
        group = {}
        for key, values in _flat(spec, where).items():
            if key in seen:
                raise ConfigError(f"{where}: {key} varies in another axis already")
            if key in SEED_KEYS:
                raise ConfigError(f"{where}: {key}: the seeds cannot be zipped (give network_seeds or "
                                  "noise_seeds in [axes])")
            seen.add(key)
            group[key] = _axis(base, key, values, where)
        if not group:
            raise ConfigError(f"{where}: an empty group")
        lengths = {k: len(v) for k, v in group.items()}
        if len(set(lengths.values())) > 1:
            raise ConfigError(f"{where}: the axes of a group must have the same length, got {lengths}")
        groups.append(group)
    report = data.get("report", {})
    if not isinstance(report, dict):
        raise ConfigError(f"{source}: report must be a table ([report])")
    for key, value in report.items():
        if key not in REPORT_KEYS:
            raise ConfigError(f"{source}: [report] unknown key {key!r}; known: {list(REPORT_KEYS)}")
        if key == "control":
            if not isinstance(value, str):
                raise ConfigError(f"{source}: [report] control: expected \"KEY=VALUE\", got {value!r}")
            try:
                parse_control(value, [*axes, *(k for g in groups for k in g)])
            except ValueError as err:
                raise ConfigError(f"{source}: [report] control: {err}") from None
        if key == "metrics" and not (isinstance(value, list) and all(isinstance(m, str) for m in value)):
            raise ConfigError(f"{source}: [report] metrics: expected a list of column names, got {value!r}")
    sweep = Sweep(base=base, axes=axes, zip=tuple(groups), kind=kind, report=dict(report), source=source)
    if len(sweep.runs()) > 1_000_000:
        raise ConfigError(f"{source}: {len(sweep.runs())} runs: at most 1000000 in one sweep")
    return sweep


def _parse_value(text: str):
    """A control value as TOML reads it (60, 0.5, true, "x"), else the text itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_control(control: str, conditions: Sequence[str] | None = None) -> dict:
    """{key: value} of "KEY=VALUE[,KEY=VALUE]"; ValueError naming a key that is not among
    `conditions` (the sweep's axes) or a part without "="."""
    parsed = {}
    for part in filter(None, (p.strip() for p in control.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{part!r}: expected KEY=VALUE, e.g. protocol.name=sham-itbs")
        if conditions is not None and key not in conditions:
            raise ValueError(f"{key!r} is not an axis of the sweep (axes: {list(conditions)})")
        parsed[key] = _parse_value(value.strip())
    if not parsed:
        raise ValueError(f"{control!r}: expected KEY=VALUE, e.g. protocol.name=sham-itbs")
    return parsed


def load_sweep(path) -> Sweep:
    """The Sweep of a sweep file, every axis value checked (the runs as a whole: Sweep.check)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot be read: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return sweep_from_dict(data, str(path), root=path.parent)


STARTER = '''\
# A starter sweep for `tmsim sweep` (copy and edit; README, "Sweeps").
# Tiny sizes: 8 runs, about a minute on 2 cores. The runs are the product of the [axes]
# (and of any [[zip]] groups); each is one `tmsim session` of the [base] configuration with
# the run's values set.
kind = "session"                # "session" (one session) or "run" (a treatment course, [course])

[base]                          # any keys of a run configuration (README, "Config reference"),
                                # or instead: base = "config.toml"
head.max_edge_mm = 12.0         # coarse sphere head: the FEM solve takes a second
patch.n_neurons = 30
protocol.test_intensity = "60% MSO"   # % MSO needs no motor-threshold search; "120% RMT" does
session.after_s = 0.05
session.n_test = 1
session.probe_minutes = [0.0]

[axes]                          # lists of values of any config key, quoted or dotted
"protocol.name" = ["single", "sham-single"]      # e.g. ["itbs", "sham-itbs"] at full size
"protocol.intensity" = ["50% MSO", "70% MSO"]    # or ["70% RMT", "90% RMT"]
network_seeds = [0]             # patch.seed: positions, wiring, thresholds of the patch
noise_seeds = [0, 1]            # session.seed: background activity

# [[zip]]                       # axes that vary together instead of in a product:
# "coil.distance_mm" = [2.0, 6.0]
# "head.max_edge_mm" = [10.0, 12.0]

[report]                        # defaults of `tmsim report DIR`
control = "protocol.name=sham-single"            # effects are paired by seed against it
metrics = ["mep_change.0.0", "mean_weights_nS.AFF_to_L5E.after_stimulation"]
'''


def write_starter(path) -> Path:
    """Write the commented starter sweep (STARTER) to `path`; FileExistsError if it exists."""
    from tmsim_io import atomic_output

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; choose another file name or remove it")
    with atomic_output(path) as tmp:
        tmp.write_text(STARTER)
    return path


# --- one run, on a worker ------------------------------------------------------------------------

def run_id(config: RunConfig, kind: str, run: Callable | None = None) -> str:
    """A stable name of a run: the hash of its configuration (output.folder aside), its kind and
    its run function's qualified name."""
    text = config.with_values({"output.folder": ""}).to_toml()
    name = "" if run is None else \
        f"{getattr(run, '__module__', '')}.{getattr(run, '__qualname__', repr(run))}"
    return hashlib.sha256(f"{kind}\n{name}\n{text}".encode()).hexdigest()[:16]


def flatten_numbers(summary: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": number} of the numbers (int, float, bool, numpy scalars) in a nested dict;
    strings, None and arrays are left out."""
    flat = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_numbers(value, name + "."))
        elif isinstance(value, bool):
            flat[name] = value
        elif isinstance(value, numbers.Integral):
            flat[name] = int(value)
        elif isinstance(value, numbers.Real):
            flat[name] = float(value)
    return flat


def _builtin_run(kind: str, config: RunConfig, folder: Path) -> dict:
    """Run a `tmsim session` or `tmsim run` configuration into `folder`; its summary.json."""
    from .pipeline import run_course_config, run_session_config

    config = config.with_values({"output.folder": str(folder)})
    (run_session_config if kind == "session" else run_course_config)(config, progress=False)
    return json.loads((folder / "summary.json").read_text())


def use_compile_cache(folder):
    """Point JAX's persistent compilation cache at `folder` unless it is set already: a process
    (a sweep worker, the next `tmsim run`) then loads the programs another compiled instead of
    compiling them, the same programs, so the same results. Programs that compile in under
    0.5 s are not stored. The folder has no size limit (JAX's needs the filelock package)."""
    import jax

    if folder is None or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def execute_run(task: dict) -> dict:
    """Run one run of a sweep (on a worker) and return its row: if its folder exists, the row
    it holds; else run it into a temporary folder beside DIR/runs/<run_id> and rename that when
    complete (a run that raises: its error, and errors/<run_id>.txt, no folder)."""
    out, rid, config = Path(task["out"]), task["run_id"], task["config"]
    folder = out / RUNS / rid
    if (folder / RECORD).is_file():
        return json.loads((folder / RECORD).read_text())
    use_compile_cache(task.get("compile_cache"))
    row = dict(run=task["run"], run_id=rid, **task["values"], status="done", error="")
    tmp = out / RUNS / f".{rid}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    try:
        run = task["run_fn"]
        result = _builtin_run(task["kind"], config, tmp) if run is None else run(config, tmp)
        (tmp / "config.toml").write_text(config.with_values({"output.folder": str(folder)}).to_toml())
        if not isinstance(result, Mapping):
            raise TypeError(f"the run function returned {type(result).__name__}, expected a dict of numbers")
        numbers = flatten_numbers(result)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        from tmsim_io import atomic_output

        with atomic_output(out / ERRORS / f"{rid}.txt") as path:
            path.write_text(traceback.format_exc())
        message = f"{type(err).__name__}: {err}".strip()
        return dict(row, status="failed", error=message, wall_s=time.perf_counter() - start)
    row = dict(row, wall_s=time.perf_counter() - start, **{k: v for k, v in numbers.items() if k not in row})
    (tmp / RECORD).write_text(json.dumps(row, indent=1, default=float) + "\n")
    try:
        os.replace(tmp, folder)
    except OSError:
        if not (folder / RECORD).is_file():       # not a twin that finished first
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return json.loads((folder / RECORD).read_text())
    (out / ERRORS / f"{rid}.txt").unlink(missing_ok=True)
    return row


# --- the sweep, on the client --------------------------------------------------------------------

class SweepFailed(RuntimeError):
    """Some runs of a sweep failed (the others finished): .table holds every row."""

    def __init__(self, message, table):
        super().__init__(message)
        self.table = table


def _remove_stale_folders(runs: Path):
    """Remove the temporary run folders a killed sweep left in DIR/runs (no run of this sweep
    is going on when it starts)."""
    if runs.is_dir():
        for path in runs.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp") and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def _table(rows: list[dict], columns: list[str]):
    """The runs table (pandas.DataFrame) of the rows so far, in run order."""
    import pandas as pd

    table = pd.DataFrame(sorted(rows, key=lambda r: r["run"]))
    first = [c for c in ["run", "run_id", *columns, "status", "error", "wall_s"] if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    for column in columns:      # tuples (lists of values) as strings, so that Parquet can hold them
        if table[column].map(lambda v: isinstance(v, (list, tuple))).any():
            table[column] = table[column].map(lambda v: json.dumps(list(v)) if isinstance(v, (list, tuple))
                                              else v)
    return table


def write_table(table, path) -> Path:
    """Write the runs table to Parquet atomically."""
    from tmsim_io import atomic_output

    with atomic_output(path) as tmp:
        table.to_parquet(tmp, index=False)
    return Path(path)


def read_table(folder):
    """The runs table of a sweep folder (DIR/runs.parquet) as a pandas.DataFrame."""
    import pandas as pd

    path = Path(folder)
    path = path / TABLE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no runs table (is {path.parent} a sweep folder?)")
    return pd.read_parquet(path)


def _client(scheduler, workers: int | None):
    """(dask Client, LocalCluster or None): one to `scheduler` (tcp://host:port or a scheduler
    file), or a new LocalCluster of `workers` single-threaded processes (default: one per core)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if isinstance(scheduler, Client):
            return scheduler, None
        text = str(scheduler)
        if Path(text).is_file():
            return Client(scheduler_file=text), None
        if "://" not in text and ":" not in text:
            raise ValueError(f"--scheduler {text!r}: expected tcp://HOST:PORT or an existing scheduler file")
        return Client(text), None
    n = workers or len(_usable_cores()) or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    client = Client(cluster)
    _pin_workers(client, n)
    return client, cluster


def _usable_cores() -> list[int]:
    """The cores this process may run on (all of os.cpu_count() where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _pin_workers(client, n: int):
    """Give each of the n worker processes of a new LocalCluster its own share of the usable
    cores (Linux; where there are at least as many cores as workers). Unpinned, each worker's
    XLA runs threads on every core: two processes simulating the plastic patch at once on two
    cores each took 1.73-1.84x as long as one alone; pinned, 0.91-1.26x, with the same final
    state bit for bit (benchmarks/pinning.py, benchmarks/RESULTS.md)."""
    cores = _usable_cores()
    if not hasattr(os, "sched_setaffinity") or n > len(cores):
        return
    client.wait_for_workers(n)
    for i, address in enumerate(sorted(client.run(os.getpid))):   # every worker's address
        client.run(_pin_process, cores[i::n], workers=[address])


def _pin_process(cores: list[int]):
    """Restrict every thread of this process, and so the threads they start, to `cores`.

    Done before the worker's first run, so that JAX's CPU client, created then, sizes its
    thread pool to these cores: a pool of a thread per core of the machine, pinned to one core
    afterwards, ran the plastic 500-neuron patch 1.6x slower (real-time factor 0.46 against
    0.29, benchmarks/RESULTS.md). With one thread in the pool a host callback would wait for
    itself (its arguments are copied on a thread of the pool), so a run function must not jit
    efield.FieldSolver's SciPy solve; its eager solve uses no callback."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # the thread ended meanwhile
            pass


WARM_UP_S = 120.0
"""How long the other workers of a LocalCluster wait for the sweep's first run (see run_sweep)."""


def _wait_for_compile(future):
    """Wait for the first run, at most WARM_UP_S: the worker processes of a LocalCluster share
    this machine's cores, so a program they all need is better compiled once, by the first
    run, and loaded by the others from the compilation cache than compiled by each at once
    (XLA compiles on several threads). Runs longer than WARM_UP_S stop waiting then."""
    from distributed import wait

    try:
        wait(future, timeout=WARM_UP_S)
    except TimeoutError:
        pass


def dashboard(client) -> str | None:
    """The Dask dashboard address of `client`'s scheduler, or None without one (bokeh missing)."""
    try:
        link = client.dashboard_link
    except Exception:
        return None
    services = client.scheduler_info().get("services", {})
    return link if "dashboard" in services else None


def run_sweep(sweep, out=None, *, run: Callable | None = None, scheduler=None, client=None,
              workers: int | None = None, progress: bool = True, compile_cache: bool | str = True,
              raise_on_failure: bool = False, log=print):
    """Run `sweep` (a Sweep, a sweep file or a dict of its tables) on Dask and return its runs
    table (pandas.DataFrame, as DIR/runs.parquet).

    out: the results folder DIR (default results/<sweep file name>, or results/sweep).
    run: a run function instead of `tmsim session`/`tmsim run`: a picklable callable
    run(config: RunConfig, folder: Path) -> dict of numbers (nested dicts are flattened); it may
    write files into `folder`, which becomes DIR/runs/<run_id>. client: a dask.distributed
    Client to use; scheduler: the address (tcp://host:8786) or scheduler file of a running
    cluster; neither: a LocalCluster of `workers` single-threaded processes (default one per
    core), closed at the end. compile_cache: True puts JAX's persistent compilation cache in
    DIR/.jax_cache (a folder: there; False: none) on workers that have none set, so that each
    network is compiled once for all workers; on a LocalCluster it starts with the first run
    alone (for at most WARM_UP_S), whose compiled programs the others then load. Runs whose
    folder exists are skipped; a run that raises is recorded (status "failed", error) and the
    others go on; raise_on_failure raises SweepFailed at the end if any failed. log(text)
    reports the dashboard and the failures."""
    from distributed import as_completed

    if isinstance(sweep, Mapping):
        sweep = sweep_from_dict(sweep)
    elif not isinstance(sweep, Sweep):
        path = Path(sweep)
        sweep = load_sweep(path)
        out = out if out is not None else Path("results") / path.stem
    out = Path(out if out is not None else "results/sweep")
    configs = sweep.configs()
    sweep.check(configs)
    values = sweep.runs()
    columns = sweep.keys + [k for k in SEED_KEYS if k not in sweep.keys]
    tasks = []
    for index, (vals, config) in enumerate(zip(values, configs)):
        row_values = {k: vals.get(k, sweep.base_value(k)) for k in columns}
        tasks.append(dict(run=index, run_id=run_id(config, sweep.kind, run), values=row_values, config=config,
                          kind=sweep.kind, run_fn=run, out=str(out.absolute())))
    ids = [t["run_id"] for t in tasks]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{sweep.source}: two runs have the same configuration")
    from tmsim_io import atomic_output

    with atomic_output(out / SWEEP_FILE) as tmp:
        tmp.write_text(sweep.to_toml())
    _remove_stale_folders(out / RUNS)
    cache = None if compile_cache is False else str(out.absolute() / COMPILE_CACHE) if compile_cache is True \
        else str(Path(compile_cache).absolute())
    rows, pending = [], []
    for task in tasks:
        record = out / RUNS / task["run_id"] / RECORD
        if record.is_file():
            rows.append(dict(json.loads(record.read_text()), run=task["run"], **task["values"]))
        else:
            pending.append(dict(task, compile_cache=cache))
    table = _table(rows, columns) if rows else None
    if pending:
        from tqdm.auto import tqdm

        own = client is None
        client, cluster = (client, None) if client is not None else _client(scheduler, workers)
        try:
            link = dashboard(client)
            if link and log:
                log(f"tmsim sweep: Dask dashboard at {link}")
            bar = tqdm(total=len(tasks), initial=len(rows), desc="tmsim sweep", unit="run",
                       disable=not progress)
            keys = [f"tmsim-run-{t['run_id']}" for t in pending]
            futures = []
            if cache is not None and own and scheduler is None and len(pending) > 1:
                futures = [client.submit(execute_run, pending[0], key=keys[0], pure=False)]
                _wait_for_compile(futures[0])
            futures += client.map(execute_run, pending[len(futures):], key=keys[len(futures):], pure=False)
            by_future = dict(zip(futures, pending))
            for future in as_completed(futures):
                task = by_future[future]
                try:
                    row = future.result()
                except Exception as err:        # the run could not be run (e.g. its worker died too often)
                    row = dict(run=task["run"], run_id=task["run_id"], status="failed",
                               error=f"{type(err).__name__}: {err}".strip(), wall_s=math.nan)
                rows.append(dict(row, run=task["run"], **task["values"]))
                table = _table(rows, columns)
                write_table(table, out / TABLE)
                bar.update()
            bar.close()
        finally:
            if own:
                client.close()
                if cluster is not None:
                    cluster.close()
    table = _table(rows, columns)
    write_table(table, out / TABLE)
    _remove_stale_folders(out / RUNS)           # those of workers that died
    failed = table[table["status"] != "done"]
    if len(failed):
        lines = [f"run {r['run']} ({', '.join(f'{k} = {r[k]!r}' for k in columns)}; {r['run_id']}): "
                 f"{r['error']}" for r in failed.to_dict("records")]
        message = (f"{len(failed)} of {len(table)} runs failed (tracebacks in {out / ERRORS}/):\n  "
                   + "\n  ".join(lines))
        if log:
            log(message)
        if raise_on_failure:
            raise SweepFailed(message, table)
    return table
