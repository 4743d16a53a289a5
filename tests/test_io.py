"""Gmsh MSH reading and writing: round trips, files by gmsh and meshio, malformed files."""

import os
import re
from pathlib import Path

import gmsh
import meshio
import numpy as np
import pytest

import efield.io as msh_io
from efield.io import MshFormatError, read_msh, write_msh
from efield.mesh import TetMesh
from efield.sphere import gmsh_session

# ----------------------------------------------------------------------------- meshes


def cube_mesh(n: int = 3, with_tris: bool = True) -> TetMesh:
    """Cube [0, n]^3 mm of 6 n^3 tetrahedra, tissues 1 (x < n/2) and 2, boundary tag 1005."""
    g = np.arange(n + 1.0)
    nodes = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    i = np.arange(len(nodes)).reshape(n + 1, n + 1, n + 1)
    corners = np.stack([i[:-1, :-1, :-1], i[1:, :-1, :-1], i[1:, 1:, :-1], i[:-1, 1:, :-1],
                        i[:-1, :-1, 1:], i[1:, :-1, 1:], i[1:, 1:, 1:], i[:-1, 1:, 1:]], -1)
    six = [[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]]
    tets = corners.reshape(-1, 8)[:, six].reshape(-1, 4)
    tags = np.where(nodes[tets].mean(axis=1)[:, 0] < n / 2, 1, 2)
    mesh = TetMesh(nodes, tets, tags)
    if not with_tris:
        return mesh
    tris = mesh.boundary_faces
    return TetMesh(nodes, tets, tags, tris, np.full(len(tris), 1005))


def with_fields(mesh: TetMesh) -> TetMesh:
    """The mesh with scalar, vector and tensor element data and scalar, vector node data."""
    rng = np.random.default_rng(0)
    return mesh.with_data(
        element_data={"magnE": rng.random(mesh.n_tets), "E": rng.normal(size=(mesh.n_tets, 3)),
                      "sigma": rng.random((mesh.n_tets, 3, 3))},
        node_data={"v": rng.normal(size=mesh.n_nodes), "A": rng.normal(size=(mesh.n_nodes, 3))})


def assert_same_mesh(a: TetMesh, b: TetMesh):
    for name in ("nodes", "tets", "tags", "tris", "tri_tags"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def enclosed_volume(points: np.ndarray, tris: np.ndarray) -> float:
    """Volume inside a closed triangulated surface (divergence theorem), mm^3."""
    p = points[tris]
    return abs(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum()) / 6.0


BALL_FILES = [(2.2, 0), (2.2, 1), (4.1, 0), (4.1, 1)]


@pytest.fixture(scope="module")
def ball(tmp_path_factory):
    """A ball of radius 10 mm around one of radius 5 mm meshed by gmsh, saved in 2.2 and 4.1.

    Physical groups: inner volume 1, shell 5, inner sphere 1001, outer sphere 1005. Each file
    also holds gmsh views: ElementData 'sigma' (2 time steps) and NodeData 'phi' (= x).
    """
    folder = tmp_path_factory.mktemp("ball")
    with gmsh_session():
        gmsh.model.add("ball")
        occ = gmsh.model.occ
        occ.fragment([(3, occ.addSphere(0, 0, 0, 10))], [(3, occ.addSphere(0, 0, 0, 5))])
        occ.synchronize()
        inner, shell = sorted((t for _, t in gmsh.model.getEntities(3)),
                              key=lambda t: occ.getMass(3, t))
        inner_s, outer_s = sorted((t for _, t in gmsh.model.getEntities(2)),
                                  key=lambda t: occ.getMass(2, t))
        for dim, entity, tag in ((3, inner, 1), (3, shell, 5), (2, inner_s, 1001),
                                 (2, outer_s, 1005)):
            gmsh.model.addPhysicalGroup(dim, [entity], tag)
        gmsh.option.setNumber("Mesh.MeshSizeMax", 2.0)
        gmsh.model.mesh.generate(3)

        node_tags, coords, _ = gmsh.model.mesh.getNodes()
        coords = coords.reshape(-1, 3)
        by_tag = dict(zip(node_tags.tolist(), range(len(node_tags))))
        tet_tags, tet_nodes = gmsh.model.mesh.getElementsByType(4)
        outer_tris = gmsh.model.mesh.getElements(2, outer_s)[2][0].reshape(-1, 3)
        expected = {
            "n_nodes": len(node_tags),
            "tet_points": coords[[by_tag[t] for t in tet_nodes]].reshape(-1, 4, 3),
            "n_inner": len(gmsh.model.mesh.getElements(3, inner)[1][0]),
            "n_tris": len(gmsh.model.mesh.getElementsByType(2)[0]),
            "sigma": tet_tags + 1.25,
            "meshed_volume": enclosed_volume(coords, np.vectorize(by_tag.get)(outer_tris)),
            "entities": (inner, shell),
        }
        sigma = gmsh.view.add("sigma")
        for step in range(2):
            gmsh.view.addHomogeneousModelData(sigma, step, "ball", "ElementData", tet_tags,
                                              tet_tags + 0.25 + step)
        phi = gmsh.view.add("phi")
        gmsh.view.addHomogeneousModelData(phi, 0, "ball", "NodeData", node_tags,
                                          coords[:, 0].copy())
        gmsh.option.setNumber("PostProcessing.SaveMesh", 0)
        files = {}
        for version, binary in BALL_FILES:
            gmsh.option.setNumber("Mesh.MshFileVersion", version)
            gmsh.option.setNumber("Mesh.Binary", binary)
            files[version, binary] = path = str(folder / f"ball_{version}_{binary}.msh")
            gmsh.write(path)
            gmsh.view.write(sigma, path, append=True)
            gmsh.view.write(phi, path, append=True)
        gmsh.option.setNumber("Mesh.SaveParametric", 1)
        gmsh.option.setNumber("Mesh.Binary", 0)
        files["parametric"] = str(folder / "ball_parametric.msh")
        gmsh.write(files["parametric"])
        gmsh.option.setNumber("Mesh.SaveParametric", 0)
        gmsh.model.removePhysicalGroups()
        gmsh.option.setNumber("Mesh.SaveAll", 1)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        files["no physical groups"] = str(folder / "ball_entities.msh")
        gmsh.write(files["no physical groups"])
        gmsh.model.remove()
    return files, expected


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_is_exact(tmp_path, binary):
    mesh = with_fields(cube_mesh())
    path = tmp_path / "cube.msh"
    write_msh(path, mesh, binary=binary)
    back = read_msh(path)
    assert_same_mesh(back, mesh)
    assert set(back.element_data) == {"magnE", "E", "sigma"}
    np.testing.assert_array_equal(back.element_data["magnE"], mesh.element_data["magnE"])
    np.testing.assert_array_equal(back.element_data["E"], mesh.element_data["E"])
    np.testing.assert_array_equal(back.element_data["sigma"],
                                  mesh.element_data["sigma"].reshape(-1, 9))
    for name in ("v", "A"):
        np.testing.assert_array_equal(back.node_data[name], mesh.node_data[name])


def test_arguments_add_and_override_data(tmp_path):
    mesh = cube_mesh().with_data(element_data={"a": np.zeros(162)}, node_data={"u": np.ones(64)})
    write_msh(tmp_path / "c.msh", mesh, element_data={"a": np.arange(162.0), "b": np.ones(162)},
              node_data={"w": np.arange(64.0)})
    back = read_msh(str(tmp_path / "c.msh"))
    np.testing.assert_array_equal(back.element_data["a"], np.arange(162.0))
    assert set(back.element_data) == {"a", "b"} and set(back.node_data) == {"u", "w"}


def test_mesh_without_triangles(tmp_path):
    mesh = cube_mesh(with_tris=False)
    write_msh(tmp_path / "c.msh", mesh, element_data={"x": mesh.barycenters[:, 0]})
    back = read_msh(tmp_path / "c.msh")
    assert_same_mesh(back, mesh)
    assert back.tris.shape == (0, 3)


def test_triangles_take_the_value_of_their_tetrahedron(tmp_path):
    """Checked with gmsh itself, which also shows that gmsh reads the written files."""
    mesh = cube_mesh()
    far = len(mesh.nodes)
    nodes = np.vstack([mesh.nodes, [[10.0, 10.0, 10.0]]])
    tris = np.vstack([mesh.tris, [[0, 1, far]]])             # not a face of any tetrahedron
    mesh = TetMesh(nodes, mesh.tets, mesh.tags, tris, np.r_[mesh.tri_tags, 1005])
    values = np.arange(mesh.n_tets) + 0.5
    path = str(tmp_path / "c.msh")
    write_msh(path, mesh, element_data={"f": values})

    owner = {}
    for t, tet in enumerate(mesh.tets):
        for face in ([0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]):
            owner[tuple(sorted(tet[face]))] = t
    expected = [values[owner[tuple(sorted(tri))]] if tuple(sorted(tri)) in owner else 0.0
                for tri in mesh.tris]
    with gmsh_session():
        gmsh.open(path)
        _, tags, data, _, n_comp = gmsh.view.getModelData(gmsh.view.getTags()[-1], 0)
        assert len(gmsh.model.mesh.getElementsByType(4)[0]) == mesh.n_tets
        gmsh.clear()
    value = dict(zip(np.asarray(tags).tolist(), np.ravel(data)))
    assert n_comp == 1 and len(value) == len(mesh.tris) + mesh.n_tets
    np.testing.assert_array_equal([value[k] for k in range(1, len(mesh.tris) + 1)], expected)
    assert expected[-1] == 0.0 and min(expected[:-1]) > 0
    np.testing.assert_array_equal([value[len(mesh.tris) + 1 + k] for k in range(mesh.n_tets)],
                                  values)


@pytest.mark.parametrize("binary", [True, False])
def test_meshio_reads_written_files(tmp_path, binary):
    mesh = with_fields(cube_mesh(with_tris=False))
    write_msh(tmp_path / "c.msh", mesh, binary=binary)
    m = meshio.read(tmp_path / "c.msh")
    np.testing.assert_array_equal(m.points, mesh.nodes)
    assert [c.type for c in m.cells] == ["tetra"]
    np.testing.assert_array_equal(m.cells_dict["tetra"], mesh.tets)
    np.testing.assert_array_equal(m.cell_data["gmsh:physical"][0], mesh.tags)
    np.testing.assert_array_equal(m.cell_data["E"][0], mesh.element_data["E"])
    np.testing.assert_array_equal(m.cell_data["magnE"][0], mesh.element_data["magnE"])
    np.testing.assert_array_equal(m.point_data["A"], mesh.node_data["A"])

    # With triangles (meshio 5.3 mis-splits element data over several blocks: none here).
    mesh = cube_mesh()
    write_msh(tmp_path / "t.msh", mesh, binary=binary)
    m = meshio.read(tmp_path / "t.msh")
    np.testing.assert_array_equal(m.cells_dict["triangle"], mesh.tris)
    np.testing.assert_array_equal(m.cells_dict["tetra"], mesh.tets)
    np.testing.assert_array_equal(m.cell_data_dict["gmsh:physical"]["triangle"], mesh.tri_tags)
    np.testing.assert_array_equal(m.cell_data_dict["gmsh:physical"]["tetra"], mesh.tags)


# ----------------------------------------------------------------------------- gmsh files


@pytest.mark.parametrize("version, binary", BALL_FILES)
def test_reads_gmsh_files(ball, version, binary):
    files, expected = ball
    mesh = read_msh(files[version, binary])
    assert mesh.n_nodes == expected["n_nodes"]
    np.testing.assert_allclose(mesh.nodes[mesh.tets], expected["tet_points"], rtol=0,
                               atol=0 if binary else 1e-14)      # gmsh ASCII: 16 digits
    assert mesh.tissues == (1, 5)
    assert np.count_nonzero(mesh.tags == 1) == expected["n_inner"]
    assert len(mesh.tris) == expected["n_tris"]
    assert set(mesh.tri_tags.tolist()) == {1001, 1005}
    assert mesh.volumes.sum() == pytest.approx(expected["meshed_volume"], rel=1e-10)
    assert mesh.volumes.sum() == pytest.approx(4 / 3 * np.pi * 1000, rel=0.03)
    assert mesh.tissue_volume(1) == pytest.approx(4 / 3 * np.pi * 125, rel=0.08)
    np.testing.assert_array_equal(mesh.element_data["sigma"], expected["sigma"])  # last step
    np.testing.assert_allclose(mesh.node_data["phi"], mesh.nodes[:, 0], rtol=1e-14, atol=1e-14)


def test_gmsh_41_with_parametric_nodes(ball):
    files, _ = ball
    text = Path(files["parametric"]).read_text()
    nodes = text[text.index("$Nodes"):text.index("$EndNodes")]
    assert re.search(r"\n[123] \d+ 1 [1-9]\d*\n", nodes)     # a block with u (v, w) coordinates
    mesh, plain = read_msh(files["parametric"]), read_msh(files[4.1, 0])
    assert_same_mesh(mesh, plain)


def test_gmsh_41_without_physical_groups_uses_entity_tags(ball):
    files, expected = ball
    mesh = read_msh(files["no physical groups"])
    assert mesh.tissues == tuple(sorted(expected["entities"]))
    assert np.count_nonzero(mesh.tags == expected["entities"][0]) == expected["n_inner"]


# ----------------------------------------------------------------------------- hand-made files


def msh22(nodes: list[str], elements: list[str], extra: str = "") -> str:
    return ("$MeshFormat\n2.2 0 8\n$EndMeshFormat\n"
            f"$PhysicalNames\n1\n3 2 \"GM\"\n$EndPhysicalNames\n"
            f"$Nodes\n{len(nodes)}\n" + "\n".join(nodes) + "\n$EndNodes\n"
            f"$Elements\n{len(elements)}\n" + "\n".join(elements) + "\n$EndElements\n" + extra)


def data22(kind: str, name: str, step: int, rows: list[str]) -> str:
    return (f'${kind}\n1\n"{name}"\n1\n{step}.0\n3\n{step}\n1\n{len(rows)}\n'
            + "\n".join(rows) + f"\n$End{kind}\n")


NODES = ["7 0 0 0", "3 1 0 0", "12 0 1 0", "5 0 0 1", "1000000000000 0 0 -1", "99 5 5 5"]
ELEMENTS = ["100 15 2 0 1 7", "101 1 2 0 1 7 3", "55 2 3 1005 7 0 7 3 5",
            "7 4 2 2 2 7 3 12 5", "8 4 4 3 9 1 -1 7 3 12 1000000000000"]


def test_hand_written_22_ascii_with_sparse_numbers_and_mixed_tags(tmp_path):
    extra = (data22("ElementData", "s", 0, ["7 1.0", "8 2.0", "55 9.0"])
             + data22("ElementData", "s", 1, ["8 20.0", "55 90.0", "7 10.0"])
             + data22("NodeData", "n", 0, [f"{t.split()[0]} {i}.5" for i, t in
                                           enumerate(NODES)][::-1]))
    path = tmp_path / "hand.msh"
    path.write_text(msh22(NODES, ELEMENTS, extra).replace("\n", "\r\n"))
    mesh = read_msh(path)
    np.testing.assert_array_equal(mesh.nodes[[0, 4]], [[0, 0, 0], [0, 0, -1]])
    np.testing.assert_array_equal(mesh.tets, [[0, 1, 2, 3], [0, 1, 2, 4]])
    np.testing.assert_array_equal(mesh.tags, [2, 3])
    np.testing.assert_array_equal(mesh.tris, [[0, 1, 3]])
    np.testing.assert_array_equal(mesh.tri_tags, [1005])
    np.testing.assert_array_equal(mesh.element_data["s"], [10.0, 20.0])
    np.testing.assert_array_equal(mesh.node_data["n"], np.arange(6) + 0.5)


MSH41 = """$MeshFormat
4.1 0 8
$EndMeshFormat
$Entities
0 0 0 1
7 0 0 0 1 1 1 1 3 0
$EndEntities
$Nodes
1 4 3 40
3 7 0 4
3
10
20
40
0 0 0
1 0 0
0 1 0
0 0 1
$EndNodes
$Elements
1 1 5 5
3 7 4 1
5 3 10 20 40
$EndElements
"""


def test_hand_written_41_ascii(tmp_path):
    path = tmp_path / "hand.msh"
    path.write_text(MSH41)
    mesh = read_msh(path)
    np.testing.assert_array_equal(mesh.tets, [[0, 1, 2, 3]])
    np.testing.assert_array_equal(mesh.tags, [3])                  # physical, not entity 7
    for old, new, words in [("3 7 4 1\n5 3 10 20 40", "3 7 5 1\n5 3 10 20 40 3 10 20 40",
                             ["$Elements", "type 5"]),
                            ("1 1 5 5\n", "1 2 5 5\n", ["$Elements", "2 elements announced"]),
                            ("1 4 3 40\n", "1 5 3 40\n", ["$Nodes", "5 nodes announced"]),
                            ("5 3 10 20 40", "5 3 10 20 41", ["$Elements", "unknown node 41"]),
                            ("0 0 1\n$EndNodes", "0 0\n$EndNodes", ["$Nodes", "ends before"])]:
        assert old in MSH41
        path.write_text(MSH41.replace(old, new))
        assert_fails(path, *words)


def binary22(endian: str) -> bytes:
    """A 2.2 binary file in the given byte order: a triangle with 3 tags, a point, a tet."""
    i4, f8 = np.dtype(endian + "i4"), np.dtype(endian + "f8")
    nodes = np.array([(7, (0, 0, 0)), (3, (1, 0, 0)), (12, (0, 1, 0)), (5, (0, 0, 1))],
                     dtype=[("n", i4), ("x", f8, (3,))])
    parts = [b"$MeshFormat\n2.2 1 8\n", np.array(1, i4).tobytes(), b"\n$EndMeshFormat\n",
             b"$Nodes\n4\n", nodes.tobytes(), b"\n$EndNodes\n$Elements\n3\n",
             np.array([2, 1, 3, 55, 1005, 1, 0, 7, 3, 5], i4).tobytes(),
             np.array([15, 1, 2, 9, 0, 1, 7], i4).tobytes(),
             np.array([4, 1, 2, 8, 2, 2, 7, 3, 12, 5], i4).tobytes(), b"\n$EndElements\n"]
    for step in (0, 1):
        rec = np.array([(55, (9, 9, 9)), (8, (step + 1, 0, -step - 1))],
                       dtype=[("n", i4), ("v", f8, (3,))])
        parts += [b'$ElementData\n1\n"E"\n1\n0.0\n3\n%d\n3\n2\n' % step, rec.tobytes(),
                  b"\n$EndElementData\n"]
    return b"".join(parts)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_hand_written_22_binary(tmp_path, endian):
    path = tmp_path / "hand.msh"
    path.write_bytes(binary22(endian))
    mesh = read_msh(path)
    np.testing.assert_array_equal(mesh.nodes, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(mesh.tets, [[0, 1, 2, 3]])
    np.testing.assert_array_equal(mesh.tags, [2])
    np.testing.assert_array_equal(mesh.tris, [[0, 1, 3]])
    np.testing.assert_array_equal(mesh.tri_tags, [1005])
    np.testing.assert_array_equal(mesh.element_data["E"], [[2, 0, -2]])


# ----------------------------------------------------------------------------- errors


def assert_fails(path, *words):
    with pytest.raises(MshFormatError) as err:
        read_msh(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return message


def assert_truncations_fail(raw: bytes, folder, n_cuts: int = 40):
    """Every prefix of `raw` at n_cuts offsets fails, except complete smaller files."""
    checked = 0
    for cut in sorted({*np.linspace(0, len(raw) - 1, n_cuts).astype(int), 5, 20, len(raw) - 3}):
        if b"$EndElements" in raw[:cut] and re.search(rb"\$End\w+\s*$", raw[:cut]):
            continue
        path = folder / f"cut{cut}.msh"
        path.write_bytes(raw[:cut])
        assert_fails(path)
        checked += 1
    assert checked >= n_cuts * 3 // 4


@pytest.mark.parametrize("binary", [True, False])
def test_truncated_files(tmp_path, binary):
    source = tmp_path / "full.msh"
    write_msh(source, with_fields(cube_mesh()), binary=binary)
    assert_truncations_fail(source.read_bytes(), tmp_path)


@pytest.mark.parametrize("version, binary", BALL_FILES)
def test_truncated_gmsh_files(ball, tmp_path, version, binary):
    files, _ = ball
    assert_truncations_fail(Path(files[version, binary]).read_bytes(), tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello\nworld\n", bytes(range(256)) * 8,
                                     b"$MeshFormat\n3.0 0 8\n$EndMeshFormat\n",
                                     b"$MeshFormat\n2.2 1 8\n\x02\x00\x00\x00\n$EndMeshFormat\n"])
def test_garbage_and_unsupported_files(tmp_path, content):
    path = tmp_path / "bad.msh"
    path.write_bytes(content)
    assert_fails(path)


def test_missing_file(tmp_path):
    assert_fails(tmp_path / "absent.msh", "cannot read")


@pytest.mark.parametrize("line, name", [("9 3 2 1 1 7 3 12 5", "type 3"),
                                        ("9 5 2 1 1 7 3 12 5 7 3 12 5", "type 5"),
                                        ("9 11 2 1 1 7 3 12 5 7 3 12 5 7 3", "type 11")])
def test_unknown_element_type_ascii(tmp_path, line, name):
    path = tmp_path / "odd.msh"
    path.write_text(msh22(NODES, ELEMENTS + [line]))
    assert_fails(path, "$Elements", name)


def test_unknown_element_type_binary(tmp_path):
    path = tmp_path / "hex.msh"
    mesh = cube_mesh()
    write_msh(path, mesh)
    header = np.array([4, mesh.n_tets, 2], "<i4").tobytes()
    path.write_bytes(path.read_bytes().replace(header, np.array([5, mesh.n_tets, 2], "<i4")
                                               .tobytes()))
    assert_fails(path, "$Elements", "type 5", "hexahedron")


BROKEN = {
    "node count": (msh22(NODES, ELEMENTS).replace("$Nodes\n6\n", "$Nodes\n7\n"),
                   ["$Nodes", "7 nodes announced"]),
    "element count": (msh22(NODES, ELEMENTS).replace("$Elements\n5\n", "$Elements\n6\n"),
                      ["$Elements", "6 elements announced"]),
    "element line length": (msh22(NODES, ELEMENTS[:3] + ["7 4 2 2 2 7 3 12"]),
                            ["$Elements", "element line 4"]),
    "unknown node": (msh22(NODES, ELEMENTS[:3] + ["7 4 2 2 2 7 3 12 404"]),
                     ["$Elements", "unknown node 404"]),
    "duplicate node": (msh22(NODES + ["7 1 1 1"], ELEMENTS), ["$Nodes", "duplicate"]),
    "no tetrahedra": (msh22(NODES, ELEMENTS[:3]), ["no tetrahedra"]),
    "partial element data": (msh22(NODES, ELEMENTS, data22("ElementData", "E", 0, ["7 1.0"])),
                             ["$ElementData", "'E'", "1 of 2 tetrahedra"]),
    "partial node data": (msh22(NODES, ELEMENTS, data22("NodeData", "v", 0, ["7 1.0"])),
                          ["$NodeData", "'v'", "1 of 6 nodes"]),
    "data size": (msh22(NODES, ELEMENTS, data22("ElementData", "E", 0, ["7 1.0"])
                        .replace("\n1\n7 1.0", "\n2\n7 1.0")),     # 2 entries, 1 given
                  ["$ElementData", "2 entries announced"]),
    "text in numbers": (msh22(NODES[:-1] + ["99 5 x 5"], ELEMENTS), ["$Nodes", "non-numeric"]),
    "missing end": (msh22(NODES, ELEMENTS).replace("$EndNodes\n", ""), ["$Nodes", "$EndNodes"]),
}


@pytest.mark.parametrize("case", BROKEN)
def test_inconsistent_files(tmp_path, case):
    text, words = BROKEN[case]
    path = tmp_path / "broken.msh"
    path.write_text(text)
    assert_fails(path, *words)


def test_binary_node_count_too_large(tmp_path):
    path = tmp_path / "c.msh"
    write_msh(path, cube_mesh())
    path.write_bytes(path.read_bytes().replace(b"$Nodes\n64\n", b"$Nodes\n65\n"))
    assert_fails(path, "$Nodes")


# ----------------------------------------------------------------------------- writing errors


@pytest.mark.parametrize("kind", ["element_data", "node_data"])
def test_wrong_data_length_writes_nothing(tmp_path, kind):
    with pytest.raises(ValueError, match="'bad'"):
        write_msh(tmp_path / "c.msh", cube_mesh(), **{kind: {"bad": np.zeros(5)}})
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.msh"
    write_msh(path, cube_mesh())
    old = path.read_bytes()
    with pytest.raises(ValueError, match="'E'"):
        write_msh(path, cube_mesh(), element_data={"E": np.zeros((3, 3))})

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(msh_io, "_write_elements", broken)
    with pytest.raises(RuntimeError):
        write_msh(path, cube_mesh(with_tris=False), binary=False)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["c.msh"]


def test_a_million_tetrahedra_round_trip(tmp_path):
    mesh = cube_mesh(55, with_tris=False)                # 998,250 tetrahedra
    path = tmp_path / "big.msh"
    E = np.random.default_rng(0).standard_normal((mesh.n_tets, 3))
    write_msh(path, mesh, element_data={"E": E})
    back = read_msh(path)
    np.testing.assert_array_equal(back.tets, mesh.tets)
    np.testing.assert_array_equal(back.element_data["E"], E)
