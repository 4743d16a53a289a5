"""Bad input to the efield entry points: clear errors (type, and a message naming the file, key
or argument) before any work, warnings where a result is doubtful, and files that other tools
read."""

import importlib
import signal
import warnings

import gmsh
import meshio
import numpy as np
import pytest

import efield
from efield import FieldSolver, MshFormatError, Placement, TetMesh
from efield.conductivity import element_conductivity
from efield.sphere import gmsh_session


@pytest.fixture(scope="module")
def head():
    return efield.sphere_head(radii_mm=(85, 90, 95), max_edge_mm=16)


@pytest.fixture(scope="module")
def coil():
    return efield.figure8_coil(resolution_mm=10)


@pytest.fixture(scope="module")
def placement(head):
    return Placement.on_scalp(head, [0, 0, 100])


@pytest.fixture(scope="module")
def solver(head):
    return FieldSolver(head)


# --- .msh files: element data that meshio reads ---------------------------------------------

def triangle_values(mesh, values):
    """What a triangle's element data should be: the value of a tetrahedron it bounds, else 0."""
    owner = {}
    for t, tet in enumerate(mesh.tets):
        for face in ([0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]):
            owner[tuple(sorted(tet[face]))] = t
    return np.array([values[owner[key]] if (key := tuple(sorted(tri))) in owner else 0.0
                     for tri in mesh.tris])


def split_by_block(cells, cell_data_raw):
    """meshio's cell_data_from_raw as meant: split at the sizes of the cell blocks."""
    sizes = np.cumsum([len(block[1]) for block in cells])[:-1]
    return {name: np.split(data, sizes) for name, data in cell_data_raw.items()}


@pytest.mark.parametrize("binary", [True, False])
def test_meshio_reads_element_data_of_every_element(tmp_path, monkeypatch, head, binary):
    """Each ElementData block covers the triangles and the tetrahedra, as in SimNIBS's files.

    meshio 5.3 splits a file's element data over its cell blocks at len((type, cells)) == 2
    instead of at the block sizes (nschloe/meshio#1257), so it can read no .msh file that has
    both triangles and element data (SimNIBS's included); the split is done right here to check
    everything else meshio reads. test_meshio_splits_element_data_by_block shows when meshio
    itself gets it right.
    """
    monkeypatch.setattr(meshio.gmsh._gmsh22, "cell_data_from_raw", split_by_block)
    values = np.arange(head.n_tets) + 0.5
    E = np.column_stack([values, -values, 2 * values])
    path = tmp_path / "e.msh"
    efield.write_msh(path, head, element_data={"v": values, "E": E}, binary=binary)
    m = meshio.read(path)
    assert [block.type for block in m.cells] == ["triangle", "tetra"]
    np.testing.assert_array_equal(m.cells_dict["tetra"], head.tets)
    np.testing.assert_array_equal(m.cell_data_dict["v"]["tetra"], values)
    np.testing.assert_array_equal(m.cell_data_dict["E"]["tetra"], E)
    expected = triangle_values(head, values)
    np.testing.assert_array_equal(m.cell_data_dict["v"]["triangle"], expected)
    assert expected.min() > 0
    back = efield.read_msh(path)
    np.testing.assert_array_equal(back.element_data["v"], values)
    np.testing.assert_array_equal(back.element_data["E"], E)


def test_saved_result_reads_in_meshio(tmp_path, monkeypatch, solver, coil, placement):
    monkeypatch.setattr(meshio.gmsh._gmsh22, "cell_data_from_raw", split_by_block)
    res = solver.solve(coil, placement, progress=False)[0]
    m = meshio.read(res.save(tmp_path / "res.msh"))
    np.testing.assert_array_equal(m.cell_data_dict["magnE"]["tetra"], res.magnE)
    np.testing.assert_array_equal(m.cell_data_dict["E"]["tetra"], res.E)
    np.testing.assert_array_equal(m.cell_data_dict["magnE"]["triangle"], triangle_values(res.mesh, res.magnE))
    np.testing.assert_array_equal(m.point_data["v"], res.potential)


def test_vtu_reads_in_meshio_as_written(tmp_path, solver, coil, placement):
    """The .vtu of a result holds the tetrahedra, tissue tags and every data array exactly."""
    res = solver.solve(coil, placement, progress=False)[0]
    m = meshio.read(res.save(tmp_path / "res.vtu"))
    assert [block.type for block in m.cells] == ["tetra"]
    np.testing.assert_array_equal(m.points, res.mesh.nodes)
    np.testing.assert_array_equal(m.cells_dict["tetra"], res.mesh.tets)
    np.testing.assert_array_equal(m.cell_data_dict["tag"]["tetra"], res.mesh.tags)
    np.testing.assert_array_equal(m.cell_data_dict["E"]["tetra"], res.E)
    np.testing.assert_array_equal(m.cell_data_dict["magnE"]["tetra"], res.magnE)
    np.testing.assert_array_equal(m.point_data["v"], res.potential)
    np.testing.assert_array_equal(m.point_data["D"], res.dadt)


def test_vtu_refuses_data_of_the_wrong_length(tmp_path, head):
    with pytest.raises(ValueError, match=r"element_data\['v'\]"):
        efield.write_vtu(tmp_path / "x.vtu", head, element_data={"v": np.zeros(3)})
    assert not list(tmp_path.iterdir())


@pytest.mark.xfail(raises=ValueError, strict=True,
                   reason="meshio 5.3 splits element data at 2 (nschloe/meshio#1257)")
def test_meshio_splits_element_data_by_block(tmp_path, head):
    values = np.arange(head.n_tets) + 0.5
    efield.write_msh(tmp_path / "e.msh", head, element_data={"v": values})
    m = meshio.read(tmp_path / "e.msh")
    np.testing.assert_array_equal(m.cell_data_dict["v"]["tetra"], values)


# --- mesh sanity ----------------------------------------------------------------------------

NAN_MSH = """$MeshFormat
2.2 0 8
$EndMeshFormat
$Nodes
5
1 0 0 0
2 1 0 0
3 0 1 0
4 0 0 nan
5 inf 0 0
$EndNodes
$Elements
1
1 4 2 2 2 1 2 3 4
$EndElements
"""


def test_read_msh_refuses_non_finite_nodes(tmp_path):
    path = tmp_path / "bad.msh"
    path.write_text(NAN_MSH)
    with pytest.raises(MshFormatError, match=r"bad\.msh: \$Nodes: 2 of 5 nodes have NaN or infinite "
                                             r"coordinates \(first: node 4\)"):
        efield.read_msh(path)


def test_read_msh_refuses_non_finite_nodes_binary(tmp_path, head):
    path = tmp_path / "bad.msh"
    efield.write_msh(path, head)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"$Nodes\n%d\n" % head.n_nodes) + len(b"$Nodes\n%d\n" % head.n_nodes)
    raw[start + 4:start + 12] = np.float64(np.nan).tobytes()        # x of the first node
    path.write_bytes(bytes(raw))
    with pytest.raises(MshFormatError, match=r"bad\.msh: \$Nodes: 1 of \d+ nodes have NaN"):
        efield.read_msh(path)


def test_tetmesh_refuses_non_finite_nodes():
    nodes = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, np.inf]]
    with pytest.raises(ValueError, match=r"TetMesh\.nodes: 1 of 4 nodes have NaN or infinite"):
        TetMesh(nodes, [[0, 1, 2, 3]], [2])


def test_inverted_tetrahedra_give_the_same_field(head, coil, placement, solver):
    """Node order is free: the solver uses gradients and |volumes| that do not depend on it."""
    tets = head.tets.copy()
    tets[::800, :2] = tets[::800, 1::-1]
    inverted = TetMesh(head.nodes, tets, head.tags, head.tris, head.tri_tags)
    assert (inverted.signed_volumes < 0).sum() == len(tets[::800]) >= 11
    res = FieldSolver(inverted).solve(coil, placement, progress=False)[0]
    ref = solver.solve(coil, placement, progress=False)[0]
    np.testing.assert_allclose(res.E, ref.E, rtol=0, atol=1e-9 * np.abs(ref.E).max())


def test_degenerate_tetrahedra_are_refused(head):
    flat = head.n_nodes + np.arange(4)
    mesh = TetMesh(np.vstack([head.nodes, [[200, 0, 0], [201, 0, 0], [200, 1, 0], [201, 1, 0]]]),
                   np.vstack([head.tets, flat]), np.r_[head.tags, 2])
    with pytest.raises(ValueError, match=rf"1 of {head.n_tets + 1} tetrahedra are degenerate "
                                         rf"\(zero volume; first: tetrahedron {head.n_tets}\)"):
        FieldSolver(mesh)


def test_on_scalp_warns_without_scalp(head):
    no_scalp = head.subset([2, 4])
    with pytest.warns(UserWarning, match=r"no scalp \(tag 5\).*4 mm outside the mesh's outer "
                                         r"surface, which there is bone \(tag 4\)"):
        Placement.on_scalp(no_scalp, [0, 0, 100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Placement.on_scalp(head, [0, 0, 100])


# --- didt, conductivity and solver arguments --------------------------------------------------

@pytest.mark.parametrize("didt, error, message", [
    (float("nan"), ValueError, r"didt=nan: must be a finite non-zero number \(A/s\)"),
    (float("inf"), ValueError, r"didt=inf: must be a finite non-zero number \(A/s\)"),
    (-float("inf"), ValueError, r"didt=-inf: must be a finite non-zero number"),
    (0.0, ValueError, r"didt=0.0: must be a finite non-zero number \(A/s\)"),
    (0, ValueError, r"didt=0: must be a finite non-zero number \(A/s\)"),
    ("1e6", TypeError, r"didt must be a number \(A/s\), got '1e6'"),
    (None, TypeError, r"didt must be a number \(A/s\), got None"),
])
def test_didt_refused_before_any_work(monkeypatch, head, coil, placement, solver, didt, error, message):
    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(importlib.import_module("efield.simulate"), "FieldSolver", no_work)
    with pytest.raises(error, match=message):
        efield.simulate(head, coil, placement, didt=didt)
    monkeypatch.setattr(efield.primary, "coil_dadt", no_work)
    with pytest.raises(error, match=message):
        solver.solve(coil, placement, didt=didt, progress=False)


def test_negative_didt_reverses_the_field(solver, coil, placement):
    forward, backward = solver.solve(coil, [placement], didt=1e6, progress=False)[0], \
        solver.solve(coil, [placement], didt=-1e6, progress=False)[0]
    np.testing.assert_allclose(backward.E, -forward.E, rtol=0, atol=1e-9 * np.abs(forward.E).max())


@pytest.mark.parametrize("conductivity, error, message", [
    ({2: float("nan")}, ValueError, r"conductivity\[2\]=nan: must be a positive finite number \(S/m\)"),
    ({4: float("inf")}, ValueError, r"conductivity\[4\]=inf: must be a positive finite number"),
    ({5: 0}, ValueError, r"conductivity\[5\]=0: must be a positive finite number"),
    ({5: -0.3}, ValueError, r"conductivity\[5\]=-0.3: must be a positive finite number"),
    ({5: "0.3"}, TypeError, r"conductivity\[5\] must be a number \(S/m\), got '0.3'"),
    ({"5": 0.3}, TypeError, r"conductivity: tissue tag '5' must be an integer"),
    ({5.0: 0.3}, TypeError, r"conductivity: tissue tag 5.0 must be an integer"),
    (0.3, TypeError, r"conductivity must be a mapping \{tag: S_per_m\}, got 0.3"),
])
def test_bad_conductivity_names_the_tag(head, conductivity, error, message):
    with pytest.raises(error, match=message):
        FieldSolver(head, conductivity=conductivity)


def test_unknown_tissue_names_python_argument_and_cli_option(head):
    tags = np.where(head.tags == 4, 11, head.tags)
    with pytest.raises(ValueError, match=r"no conductivity for tissue tag\(s\) \[11\]: .*"
                                         r"conductivity=\{tag: S_per_m\} in Python or "
                                         r"--conductivity TAG=S_PER_M on the tmsim efield or tmsim "
                                         r"target command line"):
        FieldSolver(TetMesh(head.nodes, head.tets, tags))
    np.testing.assert_array_equal(element_conductivity(tags, {11: 0.02})[tags == 11], 0.02)


@pytest.mark.parametrize("options, error, message", [
    (dict(rtol=0.0), ValueError, r"rtol=0.0: must be a positive finite number"),
    (dict(rtol=float("nan")), ValueError, r"rtol=nan"),
    (dict(rtol=1.5), ValueError, r"rtol=1.5: must lie in \(0, 1\)"),
    (dict(maxiter=0), ValueError, r"maxiter=0: must be an integer >= 1"),
    (dict(maxiter=10.5), TypeError, r"maxiter must be an integer >= 1, got 10.5"),
    (dict(backend="gpu"), ValueError, r"backend='gpu'"),
])
def test_bad_solver_options(head, options, error, message):
    with pytest.raises(error, match=message):
        FieldSolver(head, **options)


def test_bad_solve_arguments(head, solver, coil, placement):
    with pytest.raises(TypeError, match="mesh must be an efield.TetMesh"):
        FieldSolver(head.nodes)
    with pytest.raises(ValueError, match=r"batch_size=0: must be an integer >= 1"):
        solver.solve(coil, [placement], batch_size=0)
    with pytest.raises(TypeError, match=r"placements\[1\] must be an efield.Placement, got ndarray"):
        solver.solve(coil, [placement, placement.matsimnibs])
    with pytest.raises(TypeError, match="coil must be an efield.Coil"):
        solver.solve("figure8", [placement])
    with pytest.raises(TypeError, match="placement must be an efield.Placement"):
        efield.simulate(head, coil, placement.matsimnibs)


# --- placements -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(distance_mm=float("nan")), ValueError, r"distance_mm=nan: must be a finite number >= 0 \(mm\)"),
    (dict(distance_mm=float("inf")), ValueError, r"distance_mm=inf"),
    (dict(distance_mm=-2.0), ValueError, r"distance_mm=-2.0: must be a finite number >= 0"),
    (dict(distance_mm="4"), TypeError, r"distance_mm must be a number \(mm\)"),
    (dict(normal_radius_mm=0.0), ValueError, r"normal_radius_mm=0.0: must be a positive finite number"),
    (dict(centre=[0, np.nan, 100]), ValueError, r"centre must be 3 finite coordinates"),
    (dict(centre=[0, 100]), ValueError, r"centre must be 3 finite coordinates"),
    (dict(centre={"x": 1}), ValueError, r"centre must be 3 finite coordinates"),
    (dict(handle=[np.inf, 0, 0]), ValueError, r"handle must be 3 finite coordinates"),
])
def test_bad_on_scalp_arguments(head, kwargs, error, message):
    kwargs = {"centre": [0, 0, 100], **kwargs}
    with pytest.raises(error, match=message):
        Placement.on_scalp(head, **kwargs)


@pytest.mark.parametrize("matrix, error, message", [
    (np.where(np.eye(4) == 1, np.nan, 0.0), ValueError, "matsimnibs contains NaN or infinite"),
    (np.full((4, 4), np.inf), ValueError, "matsimnibs contains NaN or infinite"),
    (np.eye(3), ValueError, r"matsimnibs must be 4x4, got shape \(3, 3\)"),
    ([["a"] * 4] * 4, TypeError, "matsimnibs must be a 4x4 matrix of numbers"),
])
def test_bad_matsimnibs(matrix, error, message):
    with pytest.raises(error, match=message):
        Placement(matrix)


# --- gmsh and Ctrl-C ------------------------------------------------------------------------

def test_gmsh_session_keeps_python_ctrl_c_handler():
    assert not gmsh.isInitialized()
    # Python's own handler, as in a main process (a test worker process may ignore SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with gmsh_session():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
