"""Every plot function renders a non-empty image of the expected pixel size."""

import numpy as np
import pytest

import coupling
import coupling.plot
import efield
import neurons
import neurons.plot
from efield import plot as eplot

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

WIDTH_IN, HEIGHT_IN, DPI = 4.0, 3.0, 50


def _check_png(path, width_px, height_px):
    """The file is a PNG of width_px x height_px that is not one flat colour."""
    image = mpimg.imread(path)
    assert image.shape[:2] == (height_px, width_px)
    assert np.ptp(image[..., :3]) > 0


def _render(tmp_path, draw, name):
    """Draw on one Axes of a WIDTH_IN x HEIGHT_IN figure, save at DPI and check the PNG."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    draw(ax)
    path = neurons.plot.save(fig, tmp_path / f"{name}.png", dpi=DPI)
    _check_png(path, int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI))


@pytest.fixture(scope="module")
def field_result():
    head = efield.sphere_head(radii_mm=(85, 90, 95), max_edge_mm=10)
    coil = efield.figure8_70mm(resolution_mm=8.0)
    pos = efield.Placement.on_scalp(head, centre=[0, 0, 95], handle=[0, 50, 95])
    return efield.simulate(head, coil, pos), coil


@pytest.fixture(scope="module")
def stdp_run(tmp_path_factory):
    snaps = tmp_path_factory.mktemp("snap") / "weights.h5"
    res = neurons.simulate(neurons.song_stdp(), duration_ms=1000.0, dt_ms=0.1, seed=0,
                           snapshots_path=snaps, snapshot_every_ms=250.0, progress=False)
    return res, neurons.read_weight_snapshots(snaps)


def test_field_on_slice_and_surface_with_coil_outline(tmp_path, field_result):
    result, coil = field_result
    _render(tmp_path, lambda ax: eplot.field_on_slice(ax, result), "slice")
    _render(tmp_path, lambda ax: eplot.field_on_surface(ax, result), "surface")
    _render(tmp_path, lambda ax: eplot.coil_outline(ax, coil), "coil")


def test_field_panels_carry_a_colour_bar_in_V_per_m(field_result):
    result, _ = field_result
    fig = eplot.plot_result(result)
    labels = [ax.get_ylabel() for ax in fig.axes]
    plt.close(fig)
    assert labels.count("|E| (V/m)") == 2


def test_plot_result_with_the_coil_writes_the_figure(tmp_path, field_result):
    result, coil = field_result
    path = tmp_path / "field.png"
    eplot.plot_result(result, path, coil=coil, dpi=40)
    _check_png(path, 11 * 40, int(round(4.8 * 40)))


def test_network_plots(tmp_path, stdp_run):
    res, snaps = stdp_run
    _render(tmp_path, lambda ax: neurons.plot.raster(ax, res.spikes, end_ms=1000.0), "raster")
    _render(tmp_path, lambda ax: neurons.plot.rates(ax, res, bin_ms=50.0), "rates")
    name = res.projections[0].name
    _render(tmp_path, lambda ax: neurons.plot.weight_histogram(ax, {name: res.weights(name)}), "hist")
    _render(tmp_path, lambda ax: neurons.plot.weight_trajectories(ax, snaps), "trajectories")


def test_bdnf_plot_from_series_and_from_snapshots(tmp_path):
    series = {"healthy": (np.linspace(0, 3.6e6, 20), np.linspace(1.0, 1.4, 20)),
              "snap": dict(times_ms=np.array([0.0, 1e6]), weights=np.ones((2, 3)),
                           bdnf=np.array([[0.5, 0.7], [0.9, 1.1]]))}
    _render(tmp_path, lambda ax: neurons.plot.bdnf(ax, series, time_unit="min"), "bdnf")


@pytest.mark.slow
def test_session_and_course_figures(tmp_path, four_shells):
    head = four_shells
    coil = efield.figure8_70mm(resolution_mm=8.0)
    pos = efield.Placement.on_scalp(head, centre=[0, 0, 95], handle=[0, 50, 95])
    patch = coupling.cortical_patch(head, [0, 0, 95], radius_mm=8, n_neurons=40)
    field = coupling.neuron_field(head, efield.simulate(head, coil, pos), patch, 1e6)
    protocol = coupling.rtms(10.0, 10, 1, 0.0)
    options = coupling.SessionOptions(probe_minutes=(1.0,), after_s=0.5, n_test=2)
    session = coupling.run_protocol(patch, field, protocol, 60.0, options=options, progress=False)
    path = coupling.plot.plot_session(session, patch, tmp_path / "session.png")
    _check_png(path, 11 * 110, int(round(7.5 * 110)))
    path = coupling.plot.plot_raster(session.spikes, patch, protocol, tmp_path / "raster.png", duration_s=1.0)
    _check_png(path, 9 * 110, 5 * 110)
    course = coupling.run_course(patch, field, protocol, coupling.Calendar([0.0, 30.0]), 60.0,
                                 folder=tmp_path / "course", options=options, final_probe_days=0.01,
                                 progress=False)
    path = coupling.plot.plot_course(course, tmp_path / "course.png")
    _check_png(path, 9 * 110, 9 * 110)
