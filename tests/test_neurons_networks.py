"""Reference networks against published outcomes, and the SONATA files."""

import h5py
import numpy as np
import pytest

import neurons


@pytest.fixture(scope="module")
def coba_result():
    return neurons.simulate(neurons.coba(n_neurons=4000, seed=0), 1000.0, dt_ms=0.1, seed=0, progress=False)


def test_coba_is_asynchronous_irregular_near_20_hz(coba_result):
    # Brette et al. 2007 / Brian2 COBA benchmark: ~20 Hz, irregular firing
    rate = coba_result.mean_rate_Hz("exc")
    assert 15.0 < rate < 25.0
    assert coba_result.spikes["exc"].cv_isi() > 0.5
    _, binned = coba_result.rate_Hz("exc", bin_ms=50.0)
    assert binned[2:].min() > 5.0  # self-sustained: activity never dies out


def test_cuba_rate_matches_brian2_example():
    res = neurons.simulate(neurons.cuba(n_neurons=4000, seed=0), 1000.0, progress=False)
    assert 3.5 < res.mean_rate_Hz("exc") < 8.0  # Brian2's CUBA example: ~5.6 Hz


def test_brunel_model_a_is_asynchronous_irregular():
    res = neurons.simulate(neurons.brunel(seed=0), 500.0, seed=0, progress=False)
    assert 0.3 < res.spikes["exc"].cv_isi() < 1.0
    assert 5.0 < res.mean_rate_Hz("exc") < 100.0
    _, binned = res.rate_Hz("exc", bin_ms=10.0)
    assert binned[5:].std() < 0.5 * binned[5:].mean()  # asynchronous: no strong population oscillation


def test_sonata_spike_file_layout(coba_result, tmp_path):
    path = coba_result.save_sonata(tmp_path / "spikes.h5")
    with h5py.File(path, "r") as f:
        assert set(f["spikes"]) == {"exc", "inh"}
        for pop in ("exc", "inh"):
            g = f["spikes"][pop]
            assert g.attrs["sorting"] == "by_time"
            stamps, ids = g["timestamps"][:], g["node_ids"][:]
            assert stamps.dtype == np.float64 and ids.dtype == np.uint64
            assert g["timestamps"].attrs["units"] == "ms"
            assert np.all(np.diff(stamps) >= 0)
            trains = coba_result.spikes[pop]
            np.testing.assert_array_equal(stamps, trains.times_ms)
            np.testing.assert_array_equal(ids, trains.ids)
    assert [p.name for p in tmp_path.iterdir()] == ["spikes.h5"]  # no temporary file left
    back = neurons.read_sonata_spikes(path)
    for pop in ("exc", "inh"):
        np.testing.assert_array_equal(back[pop].times_ms, coba_result.spikes[pop].times_ms)
        np.testing.assert_array_equal(back[pop].ids, coba_result.spikes[pop].ids)


def test_reading_a_file_that_is_not_a_spike_file_names_it(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="other.h5.*no /spikes"):
        neurons.read_sonata_spikes(path)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        neurons.read_sonata_spikes(tmp_path / "missing.h5")


def test_sonata_network_layout(tmp_path):
    net = neurons.cuba(n_neurons=200, seed=3)
    path = net.save_network(tmp_path / "network.h5")
    with h5py.File(path, "r") as f:
        for pop in net.populations:
            g = f["nodes"][pop.name]
            assert g["node_type_id"].shape == (pop.n,)
            np.testing.assert_array_equal(g["node_group_index"][:], np.arange(pop.n))
            assert np.all(g["node_group_id"][:] == 0)
        for proj in net.projections:
            g = f["edges"][proj.name]
            assert g["source_node_id"].dtype == np.uint64
            assert g["source_node_id"].attrs["node_population"] == proj.pre
            assert g["target_node_id"].attrs["node_population"] == proj.post
            np.testing.assert_array_equal(g["source_node_id"][:], proj.pre_ids)
            np.testing.assert_array_equal(g["target_node_id"][:], proj.post_ids)
            np.testing.assert_array_equal(g["0/syn_weight"][:], proj.weight)
            np.testing.assert_array_equal(g["0/delay"][:], proj.delay_ms)
            assert g["edge_type_id"].shape == g["edge_group_index"].shape == (proj.n_synapses,)


def test_spike_trains_unpack_as_times_and_ids(coba_result):
    times, ids = coba_result.spikes["exc"]
    assert times.shape == ids.shape and ids.max() < 3200 and times.max() < 1000.0


def test_weight_snapshots_are_written_at_the_requested_times(tmp_path):
    pre, post = neurons.Population("pre", 50, rate_Hz=40.0), neurons.Population("post", 20)
    rule = neurons.ThreeFactorSTDP(neurons.PairSTDP(A_plus=1.0, A_minus=1.0, w_max=100.0),
                                   neurons.BDNF(basal_per_s=1.0), tau_eligibility_ms=10.0)
    proj = neurons.connect(pre, post, neurons.FixedProbability(0.5), weight=40.0, delay_ms=1.0,
                           receptor="exc", plasticity=rule, name="ff")
    net = neurons.Network((pre, post), (proj,), synapse="current")
    path = tmp_path / "weights.h5"
    res = neurons.simulate(net, 100.0, progress=False, chunk_steps=300, snapshots_path=path,
                           snapshot_every_ms=25.0)
    snaps = neurons.read_weight_snapshots(path)["ff"]
    np.testing.assert_allclose(snaps["times_ms"], [0.0, 25.0, 50.0, 75.0, 100.0])
    np.testing.assert_array_equal(snaps["weights"][0], np.float32(proj.weight))
    np.testing.assert_array_equal(snaps["weights"][-1], np.float32(res.weights("ff")))
    assert snaps["weights"].shape == (5, proj.n_synapses) and snaps["bdnf"].shape == (5, 20)
    np.testing.assert_allclose(snaps["bdnf"][0], 1800.0, rtol=1e-6)    # basal steady state
    assert res.mean_rate_Hz("post") > 5.0 and np.any(snaps["weights"][-1] != snaps["weights"][0])
    assert [p.name for p in tmp_path.iterdir()] == ["weights.h5"]


def test_spikes_streamed_to_file_equal_spikes_in_memory(tmp_path):
    net = neurons.cuba(n_neurons=400, seed=0)
    in_memory = neurons.simulate(net, 50.0, progress=False, chunk_steps=100)
    path = tmp_path / "stream.h5"
    streamed = neurons.simulate(net, 50.0, progress=False, chunk_steps=100, spikes_path=path)
    assert len(in_memory.spikes["exc"]) > 50
    for pop in ("exc", "inh"):
        np.testing.assert_array_equal(streamed.spikes[pop].times_ms, in_memory.spikes[pop].times_ms)
        np.testing.assert_array_equal(streamed.spikes[pop].ids, in_memory.spikes[pop].ids)
    with h5py.File(path, "r") as f:
        assert f["spikes/exc"].attrs["sorting"] == "by_time"
        assert f["spikes/exc/node_ids"].dtype == np.uint64
    assert [p.name for p in tmp_path.iterdir()] == ["stream.h5"]


def test_a_spike_file_written_in_many_pieces_holds_every_spike_in_order(tmp_path):
    """The writer holds spikes and writes them in batches of FLUSH_SPIKES: appends that cross
    a batch's end, empty ones, and a last partial batch all reach the file, in order."""
    from neurons.io import SpikeFile, SpikeFileWriter

    rng = np.random.default_rng(0)
    sizes, written = {"a": 50, "b": 7}, {0: [], 1: []}
    with SpikeFileWriter(tmp_path / "s.h5", sizes) as out:
        for step in range(3000):
            n = int(rng.integers(0, 60))
            part = (step + np.sort(rng.uniform(0.0, 1.0, n)), rng.integers(0, 7, n))
            out.append(step % 2, *part)
            written[step % 2].append(part)
    assert sum(len(t) for parts in written.values() for t, _ in parts) > 1.2 * SpikeFileWriter.FLUSH_SPIKES
    spikes = SpikeFile(tmp_path / "s.h5", sizes)
    for index, name in enumerate(sizes):
        np.testing.assert_array_equal(spikes[name].times_ms, np.concatenate([t for t, _ in written[index]]))
        np.testing.assert_array_equal(spikes[name].ids, np.concatenate([i for _, i in written[index]]))
