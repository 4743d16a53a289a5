"""Statistics of a sweep: `tmsim report DIR` and `report`.

The finished runs of a sweep's table (DIR/runs.parquet) are grouped by condition: the values of
its axes other than the seeds (every column named by a run configuration key except patch.seed
and session.seed). For each condition and each metric (a number the runs returned) it gives
the number of runs n, the mean and a 95 % percentile-bootstrap confidence interval of the mean
over the runs (the seeds): N_RESAMPLES resamples of the n runs with replacement, drawn with
numpy.random.default_rng(seed), the 2.5th and 97.5th percentiles of their means; no interval
(NaN) with fewer than two runs.

With a control condition (`--control "protocol.name=sham-itbs"`, several keys comma-separated),
each other condition is compared with the control condition that has the same values of the
other axes: the runs are paired by their seeds (patch.seed, session.seed), and the effect is
the mean of the paired differences (condition minus control), with its bootstrap interval over
the pairs and the number of pairs.

Writes DIR/report.csv, DIR/report.md and DIR/report.png (mean and interval of each metric per
condition). pandas and matplotlib are imported when it runs.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Sequence

import numpy as np

from .config import SCHEMA
from .sweep import META_COLUMNS, SEED_KEYS, SWEEP_FILE, parse_control, read_table

N_RESAMPLES = 10_000
"""Bootstrap resamples of each interval."""
CONFIDENCE = 0.95
MAX_FIGURE_METRICS = 6
"""Metrics drawn in report.png (the first ones, unless chosen)."""


def bootstrap_ci(values, *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values`: n_resamples resamples with
    replacement (numpy.random.default_rng(seed).integers), the (1 -+ confidence) / 2 quantiles
    of their means. (nan, nan) with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or not np.isfinite(values).all():
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _matches(column, value):
    """Rows of `column` equal to `value` (or to its text)."""
    return column.map(lambda v: v == value or str(v) == str(value))


def condition_columns(table) -> list[str]:
    """The columns that name conditions: run configuration keys other than the seeds."""
    keys = {f"{t}.{k}" for t, names in SCHEMA.items() for k in names}
    return [c for c in table.columns if c in keys and c not in SEED_KEYS]


def metric_columns(table) -> list[str]:
    """The numeric columns a run returned (not a config key, seed or bookkeeping column)."""
    keys = {f"{t}.{k}" for t, names in SCHEMA.items() for k in names}
    return [c for c in table.columns if c not in keys and c not in META_COLUMNS
            and table[c].dtype.kind in "fiub"]


def report(source, *, control: str | dict | None = None, metrics: Sequence[str] | None = None,
           n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0, out=None,
           figure: bool = True):
    """The statistics of a sweep (see the module docstring) as a pandas.DataFrame, one row per
    condition and metric: the condition columns, metric, n, mean, ci_low, ci_high and, with a
    control, effect, effect_ci_low, effect_ci_high, n_pairs (NaN for the control itself).

    source: a sweep folder (its runs.parquet; control and metrics default to the [report] table
    of its sweep.toml) or a runs table. control: "KEY=VALUE[,KEY=VALUE]" or {key: value}.
    metrics: the columns to report (default every numeric one). out: a folder to write
    report.csv, report.md and (figure) report.png into (default: the sweep folder; None for a
    table)."""
    import pandas as pd

    settings = {}
    if isinstance(source, pd.DataFrame):
        table = source
    else:
        folder = Path(source)
        table = read_table(folder)
        out = folder if out is None else out
        if (folder / SWEEP_FILE).is_file():
            settings = tomllib.loads((folder / SWEEP_FILE).read_text()).get("report", {})
    control = settings.get("control") if control is None else control
    metrics = settings.get("metrics") if metrics is None else metrics
    conditions = condition_columns(table)
    chosen = metric_columns(table) if metrics is None else list(metrics)
    missing = [m for m in chosen if m not in table.columns]
    if missing:
        raise ValueError(f"metrics {missing} are not columns of the runs table; numeric ones: "
                         f"{metric_columns(table)}")
    if isinstance(control, str):
        control = parse_control(control, conditions)
    elif control is not None:
        unknown = [k for k in control if k not in conditions]
        if unknown:
            raise ValueError(f"control: {unknown[0]!r} is not an axis of the sweep (axes: {conditions})")
    done = table[table["status"] == "done"] if "status" in table.columns else table
    seeds = [k for k in SEED_KEYS if k in done.columns]
    groups = list(done.groupby(conditions, sort=False, dropna=False)) if conditions else [((), done)]
    rows = []
    for key, runs in groups:
        key = key if isinstance(key, tuple) else (key,)
        values = dict(zip(conditions, key))
        is_control = control is not None and all(str(values[k]) == str(v) or values[k] == v
                                                 for k, v in control.items())
        reference = None
        if control is not None and not is_control:
            mask = np.ones(len(done), bool)
            for column in conditions:
                mask &= _matches(done[column], control.get(column, values[column])).to_numpy()
            reference = done[mask]
        for metric in chosen:
            x = runs[metric].to_numpy(dtype=float)
            low, high = bootstrap_ci(x, n_resamples=n_resamples, confidence=confidence, seed=seed)
            mean = float(np.nanmean(x)) if np.isfinite(x).any() else math.nan
            row = dict(values, metric=metric, n=int(np.isfinite(x).sum()), mean=mean, ci_low=low,
                       ci_high=high)
            if control is not None:
                row.update(effect=math.nan, effect_ci_low=math.nan, effect_ci_high=math.nan, n_pairs=0)
                if reference is not None:
                    paired = runs[seeds + [metric]].merge(reference[seeds + [metric]], on=seeds,
                                                         suffixes=("", "_control"))
                    d = (paired[metric] - paired[metric + "_control"]).to_numpy(dtype=float)
                    d = d[np.isfinite(d)]
                    if d.size:
                        low, high = bootstrap_ci(d, n_resamples=n_resamples, confidence=confidence, seed=seed)
                        row.update(effect=float(d.mean()), effect_ci_low=low, effect_ci_high=high,
                                   n_pairs=int(d.size))
            rows.append(row)
    result = pd.DataFrame(rows)
    result.attrs.update(control=control, confidence=confidence, n_resamples=n_resamples, seed=seed)
    if out is not None:
        write_report(result, out, conditions=conditions, figure=figure)
    return result


def markdown(result, conditions: Sequence[str] | None = None) -> str:
    """The report as a Markdown table (numbers to 4 significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    columns = list(result.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in result.itertuples(index=False)]
    level = int(round(100 * result.attrs.get("confidence", CONFIDENCE)))
    note = (f"\nMean and {level} % percentile-bootstrap interval over the runs of each condition "
            f"({result.attrs.get('n_resamples', N_RESAMPLES)} resamples, seed {result.attrs.get('seed', 0)})")
    if result.attrs.get("control"):
        control = ", ".join(f"{k} = {v}" for k, v in result.attrs["control"].items())
        note += f"; effect: mean difference from the control ({control}), paired by seed"
    return "\n".join(lines) + "\n" + note + ".\n"


def write_report(result, folder, *, conditions: Sequence[str] | None = None,
                 figure: bool = True) -> list[Path]:
    """Write report.csv, report.md and (figure) report.png into `folder`; the paths."""
    from tmsim_io import atomic_output

    folder = Path(folder)
    paths = [folder / "report.csv", folder / "report.md"]
    with atomic_output(paths[0]) as tmp:
        result.to_csv(tmp, index=False)
    with atomic_output(paths[1]) as tmp:
        tmp.write_text(markdown(result, conditions))
    if figure and len(result):
        paths.append(plot_report(result, folder / "report.png"))
    return paths


def plot_report(result, path=None, metrics: Sequence[str] | None = None):
    """Mean and interval of each metric (at most MAX_FIGURE_METRICS) per condition, one panel a
    metric (tmsim_io.figure: no pyplot state with a path). Returns the path, or the Figure."""
    from tmsim_io import figure, save_figure

    metrics = list(metrics or dict.fromkeys(result["metric"]))[:MAX_FIGURE_METRICS]
    conditions = [c for c in result.columns if c not in
                  ("metric", "n", "mean", "ci_low", "ci_high", "effect", "effect_ci_low", "effect_ci_high",
                   "n_pairs")]
    fig = figure(path, figsize=(4.0 * min(len(metrics), 3), 3.2 * math.ceil(len(metrics) / 3)),
                 constrained_layout=True)
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(math.ceil(len(metrics) / 3), min(len(metrics), 3), k + 1)
        rows = result[result["metric"] == metric]
        labels = ["\n".join(f"{c.split('.')[-1]}={r[c]}" for c in conditions) or "all"
                  for _, r in rows.iterrows()]
        y = rows["mean"].to_numpy(float)
        err = np.abs(np.vstack([y - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - y]))
        ax.errorbar(np.arange(len(y)), y, yerr=np.nan_to_num(err), fmt="o", capsize=3)
        ax.set_xticks(np.arange(len(y)), labels, fontsize=7)
        ax.set_title(metric, fontsize=8)
    return save_figure(fig, path) if path is not None else fig
