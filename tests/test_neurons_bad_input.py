"""Bad input to the neurons package: clear errors that name the argument, field or file, raised
before any simulation, and no file left half-written (a full disk included)."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neurons
from neurons import (CurrentInjection, FixedInDegree, Network, NeuronParams, PairSTDP, PoissonInput,
                     Population, Projection, TripletSTDP, connect)

NAN, INF = float("nan"), float("inf")
ROOT = Path(__file__).resolve().parents[1]


def _pair(**kw):
    pop = Population("p", 5)
    return connect(pop, pop, FixedInDegree(2), receptor="exc", **{"weight": 1.0, "delay_ms": 1.0, **kw})


def _projection(**kw):
    ids = np.array([0, 1])
    fields = {"weight": np.ones(2), "delay_ms": np.ones(2), **kw}
    return Projection("direct", "p", "p", 3, 3, "exc", ids, ids[::-1], **fields)


BUILD = [
    (lambda: Population("p", 3, NeuronParams(C_pF=NAN)), ValueError, "'p': NeuronParams.C_pF must be finite"),
    (lambda: Population("p", 3, NeuronParams(v_threshold_mV=INF)), ValueError, "NeuronParams.v_threshold_mV"),
    (lambda: Population("p", 3, NeuronParams(tau_exc_ms=NAN)), ValueError, "NeuronParams.tau_exc_ms"),
    (lambda: Population("p", 3, NeuronParams(t_ref_ms=INF)), ValueError, "NeuronParams.t_ref_ms"),
    (lambda: Population("p", 3, NeuronParams(g_leak_nS=[10.0, NAN, 10.0])), ValueError,
     r"NeuronParams.g_leak_nS must be finite, got nan \(entry 1 of 3\)"),
    (lambda: Population("p", 3, NeuronParams(I_bias_pA="a lot")), TypeError, "NeuronParams.I_bias_pA"),
    (lambda: Population("p", 3, NeuronParams(C_pF=-1.0)), ValueError, "NeuronParams.C_pF must be > 0"),
    (lambda: Population("p", 3, v_init_mV=NAN), ValueError, "'p': v_init_mV must be finite"),
    (lambda: Population("p", 2, positions_mm=[[0, 0, 0], [0, NAN, 0]]), ValueError, "'p': positions_mm"),
    (lambda: Population("p", 3, rate_Hz=NAN), ValueError, "'p': rate_Hz must be finite"),
    (lambda: Population("p", 3, rate_Hz=INF), ValueError, "'p': rate_Hz must be finite"),
    (lambda: Population("p", 3, rate_Hz=-1.0), ValueError, "'p': rate_Hz must be >= 0"),
    (lambda: Population("p", 2.5), TypeError, "'p': n must be an integer"),
    (lambda: Population("p", 0), ValueError, r"'p': n must be an integer >= 1"),
    (lambda: Population(7, 3), TypeError, "name must be a str"),
    (lambda: PoissonInput("p", 10, NAN, 1.0), ValueError, "PoissonInput onto 'p': rate_Hz must be finite"),
    (lambda: PoissonInput("p", 10, 5.0, INF), ValueError, "PoissonInput onto 'p': weight must be finite"),
    (lambda: PoissonInput("p", 10, 5.0, "1"), TypeError, "PoissonInput onto 'p': weight"),
    (lambda: PoissonInput("p", -1, 5.0, 1.0), ValueError, "PoissonInput onto 'p': n_sources"),
    (lambda: PoissonInput("p", 10, -5.0, 1.0), ValueError, "PoissonInput onto 'p': rate_Hz must be >= 0"),
    (lambda: _pair(weight=NAN), ValueError, "connect 'p_to_p': weight must be finite"),
    (lambda: _pair(weight=lambda rng, n: np.full(n, INF)), ValueError, "'p_to_p': weight must be finite"),
    (lambda: _pair(delay_ms=NAN), ValueError, "connect 'p_to_p': delay_ms must be finite"),
    (lambda: _pair(delay_ms=0.0), ValueError, "Projection 'p_to_p': delay_ms must be > 0"),
    (lambda: _pair(weight="strong"), TypeError, "connect 'p_to_p': weight"),
    (lambda: _projection(weight=np.array([1.0, NAN])), ValueError, "Projection 'direct': weight must be"),
    (lambda: _projection(delay_ms=np.array([INF, 1.0])), ValueError, "Projection 'direct': delay_ms must be"),
    (lambda: neurons.coba(n_neurons=20, w_exc_nS=NAN), ValueError, "'exc_to_exc': weight must be finite"),
    (lambda: neurons.cuba(n_neurons=20, w_inh_pA=-INF), ValueError, "'inh_to_exc': weight must be finite"),
    (lambda: neurons.coba(n_neurons=20, drive_pA=INF), ValueError, "'exc': NeuronParams.I_bias_pA"),
    (lambda: neurons.brunel(n_neurons=50, eta=NAN), ValueError, "PoissonInput onto 'exc': rate_Hz"),
    (lambda: neurons.brunel(n_neurons=50, delay_ms=NAN), ValueError, "'exc_to_exc': delay_ms"),
    (lambda: neurons.song_stdp(n_inputs=5, rate_Hz=INF), ValueError, "'input': rate_Hz must be finite"),
    (lambda: PairSTDP(A_plus=NAN, A_minus=0.01), ValueError, "PairSTDP.A_plus must be finite"),
    (lambda: PairSTDP(0.01, 0.01, tau_minus_ms=INF), ValueError, "PairSTDP.tau_minus_ms must be finite"),
    (lambda: PairSTDP(0.01, 0.01, tau_plus_ms=0.0), ValueError, "PairSTDP.tau_plus_ms must be > 0"),
    (lambda: PairSTDP(0.01, 0.01, w_max=NAN), ValueError, r"PairSTDP: w_max \(nan\)"),
    (lambda: PairSTDP(0.01, 0.01, w_max=INF, bounds="soft"), ValueError, "PairSTDP: soft bounds need finite"),
    (lambda: TripletSTDP(0.01, 0.01, 0.01, NAN), ValueError, "TripletSTDP.A3_minus must be finite"),
    (lambda: CurrentInjection("p", [0], np.array([1.0, NAN])), ValueError,
     "CurrentInjection into 'p': amplitude_pA must be finite"),
]


@pytest.mark.parametrize("build, error, match", BUILD, ids=[m for _, _, m in BUILD])
def test_bad_numbers_are_refused_where_the_model_is_built(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_good_values_are_still_accepted():
    """The checks refuse no valid value: per-neuron parameter arrays, Poisson generators at
    0 Hz, unbounded weights under hard bounds, negative current weights, a callable weight."""
    pop = Population("p", 3, NeuronParams(g_leak_nS=[9.0, 10.0, 11.0]), v_init_mV=np.zeros(3), rate_Hz=0.0)
    PairSTDP(0.01, 0.01, w_min=-INF, w_max=INF)
    PoissonInput("p", 0, 0.0, -1.0)
    proj = connect(pop, pop, FixedInDegree(2), weight=lambda rng, n: rng.uniform(-1, 0, n), delay_ms=0.1,
                   receptor="inh")
    assert Network((pop,), (proj,), synapse="current").n_neurons == 3


@pytest.fixture(scope="module")
def tiny():
    return Network((Population("p", 4),), synapse="current")


SIMULATE = [
    (dict(duration_ms=NAN), ValueError, r"simulate: duration_ms must be finite"),
    (dict(duration_ms=INF), ValueError, r"simulate: duration_ms must be finite"),
    (dict(duration_ms=0.0), ValueError, r"simulate: duration_ms must be > 0"),
    (dict(duration_ms=-5.0), ValueError, r"simulate: duration_ms must be > 0"),
    (dict(duration_ms="10"), TypeError, r"simulate: duration_ms must be a number"),
    (dict(dt_ms=NAN), ValueError, r"simulate: dt_ms must be finite"),
    (dict(dt_ms=INF), ValueError, r"simulate: dt_ms must be finite"),
    (dict(dt_ms=0.0), ValueError, r"simulate: dt_ms must be > 0"),
    (dict(dt_ms=[0.1, 0.2]), TypeError, r"simulate: dt_ms must be a number"),
    (dict(seed=2**70), ValueError, r"simulate: seed must be an integer in \[0, 4294967295\]"),
    (dict(seed=2**32), ValueError, r"simulate: seed must be an integer in \[0, 4294967295\]"),
    (dict(seed=-1), ValueError, r"simulate: seed must be an integer in \[0, 4294967295\]"),
    (dict(seed=1.5), TypeError, r"simulate: seed must be an integer"),
    (dict(chunk_steps=0), ValueError, r"simulate: chunk_steps must be an integer >= 1"),
    (dict(chunk_steps=100.0), TypeError, r"simulate: chunk_steps must be an integer"),
    (dict(max_spikes_per_step=0), ValueError, r"simulate: max_spikes_per_step must be an integer >= 1"),
    (dict(duration_ms=1e12), ValueError, r"1e\+13 steps; a run from step 0 needs 1 to 2147483647 steps"),
    (dict(duration_ms=1e300, dt_ms=1e-300), ValueError, r"inf steps; a run from step 0 needs 1 to"),
    (dict(duration_ms=0.01), ValueError, r"0\.1 steps; a run from step 0 needs 1 to"),
    (dict(duration_ms=1e8, record={"p": np.arange(4)}), ValueError,
     r"per-step monitors of 1000000000 steps \(4 recorded neurons\) need about 70.8 GiB"),
    (dict(snapshot_every_ms=NAN), ValueError, r"simulate: snapshot_every_ms must be finite"),
    (dict(state="saved.h5"), TypeError, r"simulate: state must be a NetworkState"),
]


@pytest.mark.parametrize("kwargs, error, match", SIMULATE, ids=[m for _, _, m in SIMULATE])
def test_simulate_refuses_bad_arguments_up_front(tiny, kwargs, error, match, monkeypatch):
    if "GiB" in match:  # the monitor memory check against a machine of 16 GiB
        monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**22}[name])
    args = {"duration_ms": 10.0, "dt_ms": 0.1, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        neurons.simulate(tiny, args.pop("duration_ms"), **args)


def test_rest_and_initial_state_refuse_bad_durations(tiny):
    with pytest.raises(ValueError, match="initial_state: dt_ms must be finite"):
        neurons.initial_state(tiny, dt_ms=NAN)
    state = neurons.initial_state(tiny)
    with pytest.raises(ValueError, match="rest: duration_ms must be finite"):
        neurons.rest(tiny, state, NAN)
    with pytest.raises(ValueError, match="rest: dt_ms must be > 0"):
        neurons.rest(tiny, state, 10.0, dt_ms=0.0)


# Fills a small file system (or a file size limit) through each HDF5 writer of the package and
# reports, as JSON, the error raised and what the folder holds afterwards.
_FILL = r"""
import json, os, sys
import numpy as np
from neurons import SpikeTrains, write_sonata_spikes
from neurons.io import SpikeFileWriter, WeightSnapshotWriter

folder, limit = sys.argv[1], int(sys.argv[2])
if limit:
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def spikes(path):
    with SpikeFileWriter(path, {"a": 10, "b": 5}) as out:
        for i in range(2000):  # 32 MB
            out.append(i % 2, np.full(1000, float(i)), np.arange(1000) % 5)


def snapshots(path):
    with WeightSnapshotWriter(path, {"proj": (5000, 10)}) as out:
        for i in range(200):  # 4 MB
            out.append("proj", float(i), np.ones(5000), np.ones(10))


def whole(path):
    write_sonata_spikes(path, {"a": SpikeTrains(np.arange(1e5), np.zeros(100_000, np.int64), 1)})


def small(path):
    with SpikeFileWriter(path, {"a": 10}) as out:
        out.append(0, np.arange(30_000.0), np.arange(30_000) % 10)


report = {}
for name, write in [("spikes", spikes), ("snapshots", snapshots), ("whole", whole), ("small", small)]:
    path = os.path.join(folder, name + ".h5")
    try:
        write(path)
        report[name] = None
    except OSError as err:
        report[name] = dict(type=type(err).__name__, errno=err.errno, message=str(err),
                            left=os.listdir(folder))
print(json.dumps(report))
"""


def _mount_tmpfs(folder: Path):
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs: {err}")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")


@pytest.mark.parametrize("how", ["tmpfs", "file size limit"])
def test_a_full_disk_leaves_nothing_and_raises_one_oserror_naming_the_file(tmp_path, how):
    folder = tmp_path / "disk"
    folder.mkdir()
    if how == "tmpfs":
        _mount_tmpfs(folder)
    elif not hasattr(os, "setrlimit") and sys.platform == "win32":
        pytest.skip("no file size limits on Windows")
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
        # a subprocess: before the fix, HDF5 crashed the interpreter (segfault at exit)
        done = subprocess.run([sys.executable, "-c", _FILL, str(folder), "0" if how == "tmpfs" else "262144"],
                              capture_output=True, text=True, timeout=300, env=env)
        left = sorted(os.listdir(folder))
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Exception ignored" not in done.stderr and "HDF5-DIAG" not in done.stderr, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    code = "ENOSPC" if how == "tmpfs" else "EFBIG"
    for name, error in report.items():
        assert error is not None, f"{name}: no error although the {how} was exceeded"
        assert error["type"] == "OSError" and error["errno"] == getattr(errno, code)
        assert f"{folder / name}.h5" in error["message"]
        assert "nothing was written" in error["message"]
        assert error["left"] == [], f"{name}: left {error['left']}"
    assert left == []
