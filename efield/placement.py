"""Coil placement on the head: the SimNIBS ``matsimnibs`` matrix and scalp geometry.

matsimnibs is a 4x4 affine whose columns are the coil's x, y and z axes and its centre in
head coordinates (mm): z points into the head, y along the handle, x = y cross z.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .checks import finite_number
from .coil import Coil
from .geometry import Surface, resolve_point, surface_index, tet_index
from .mesh import TISSUE_NAMES, TetMesh

SCALP = 5
"""SimNIBS tissue tag of the scalp, on which `Placement.on_scalp` expects to place the coil."""

ORTHONORMAL_TOL = 1e-6
"""Tolerance on R^T R = I for the rotation part of matsimnibs and on its last row."""

DEFAULT_HANDLE = np.array([0.0, -1.0, 0.0])
"""Handle direction when none is given: posterior (-y of the head frame) ..."""
FALLBACK_HANDLE = np.array([0.0, 0.0, 1.0])
"""... or superior (+z) where posterior is within about 17 degrees of the scalp normal."""


def transform_elements(matsimnibs, positions_mm, vectors):
    """Coil-frame element positions (k, 3) mm and vectors (k, 3) in head coordinates.

    Positions are rotated and translated, vectors (moments, segment vectors) only rotated.
    Works on NumPy and JAX arrays alike (differentiable with respect to matsimnibs).
    """
    rotation = matsimnibs[:3, :3]
    return positions_mm @ rotation.T + matsimnibs[:3, 3], vectors @ rotation.T


@dataclass(frozen=True, eq=False)
class Placement:
    """A coil pose: matsimnibs, a read-only (4, 4) float64 array (mm)."""

    matsimnibs: np.ndarray

    def __post_init__(self):
        try:
            m = np.array(self.matsimnibs, dtype=np.float64, copy=True)
        except (TypeError, ValueError):
            raise TypeError(f"matsimnibs must be a 4x4 matrix of numbers, got {self.matsimnibs!r}") from None
        _check_matsimnibs(m)
        m.flags.writeable = False
        object.__setattr__(self, "matsimnibs", m)

    def __repr__(self):
        c, y = self.centre_mm, self.y_axis
        return (f"Placement(centre=[{c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}] mm, "
                f"handle=[{y[0]:.2f}, {y[1]:.2f}, {y[2]:.2f}])")

    @property
    def centre_mm(self) -> np.ndarray:
        """The coil centre (the casing's bottom centre) in head coordinates, (3,) mm."""
        return self.matsimnibs[:3, 3]

    @property
    def x_axis(self) -> np.ndarray:
        """The coil's x axis in head coordinates (unit vector)."""
        return self.matsimnibs[:3, 0]

    @property
    def y_axis(self) -> np.ndarray:
        """The handle direction."""
        return self.matsimnibs[:3, 1]

    @property
    def z_axis(self) -> np.ndarray:
        """Points into the head."""
        return self.matsimnibs[:3, 2]

    def apply(self, coil: Coil) -> Coil:
        """The coil with its elements in head coordinates (mm)."""
        dip_pos, dip_mom = transform_elements(self.matsimnibs, coil.dipole_positions,
                                              coil.dipole_moments)
        seg_pos, seg_vec = transform_elements(self.matsimnibs, coil.segment_positions,
                                              coil.segment_vectors)
        return Coil(dip_pos, dip_mom, seg_pos, seg_vec, coil.didt_max, coil.name, coil.header)

    @classmethod
    def on_scalp(cls, mesh: TetMesh, centre, handle=None, distance_mm: float = 4.0,
                 normal_radius_mm: float = 5.0) -> "Placement":
        """Place the coil over the scalp point closest to `centre`, like SimNIBS.

        centre: a point (mm) near the scalp, or an EEG label such as "F3" (looked up in
        mesh.eeg_positions, without regard to case); it is projected to the closest point of
        the mesh's outer surface. z is minus the area-weighted outward normal of the surface
        triangles within normal_radius_mm of that point. handle: a point (mm) the handle points
        towards (SimNIBS pos_ydir), or an EEG label: y is handle - centre made perpendicular to z. Without a
        handle, y points posterior (-y of the head), or superior (+z) where posterior is
        nearly normal to the scalp. The coil centre lies distance_mm (finite, >= 0) outside the
        scalp. Where the outer surface there is not scalp (tag 5), for instance on a mesh
        without scalp, it warns and names the tissue the coil is placed on.
        """
        if not isinstance(mesh, TetMesh):
            raise TypeError(f"mesh must be an efield.TetMesh, got {type(mesh).__name__}")
        distance_mm = finite_number(distance_mm, "distance_mm", 0.0, unit="mm")
        normal_radius_mm = finite_number(normal_radius_mm, "normal_radius_mm", 0.0, strict=True, unit="mm")
        centre = resolve_point(mesh, centre, "centre")
        surface = surface_index(mesh)
        scalp, _, _ = surface.closest(centre[None])
        scalp = scalp[0]
        tissue = int(mesh.outer_surface_tags[surface.tree.query(scalp)[1]])
        if tissue != SCALP:
            missing = "" if SCALP in mesh.tissues else "the mesh has no scalp (tag 5), so "
            warnings.warn(f"Placement.on_scalp: {missing}the coil is placed {distance_mm:g} mm outside "
                          f"the mesh's outer surface, which there is {TISSUE_NAMES.get(tissue, 'tissue')} "
                          f"(tag {tissue}), not scalp (tag 5)", UserWarning, stacklevel=2)
        z = -surface.mean_normal(scalp, normal_radius_mm)
        y = _handle_axis(centre, None if handle is None else resolve_point(mesh, handle, "handle"), z)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = np.cross(y, z), y, z
        m[:3, 3] = scalp - distance_mm * z
        return cls(m)


def check_clearance(mesh: TetMesh, coil: Coil, placement) -> float:
    """Raise ValueError if any coil element lies inside the head's outer surface.

    placement: a Placement or a matsimnibs matrix. Checks dipole positions and segment
    midpoints. Returns the smallest distance (mm) from an element to the scalp when all are
    outside.
    """
    if not isinstance(mesh, TetMesh):
        raise TypeError(f"mesh must be an efield.TetMesh, got {type(mesh).__name__}")
    if not isinstance(coil, Coil):
        raise TypeError(f"coil must be an efield.Coil, got {type(coil).__name__}")
    if not isinstance(placement, Placement):
        placement = Placement(placement)
    head = placement.apply(coil)
    points = np.vstack([head.dipole_positions, head.segment_positions])
    if len(points) == 0:
        raise ValueError(f"{coil!r} has no elements")
    surface = surface_index(mesh)
    points = points[_may_matter(mesh, surface, points)]
    distance = surface.signed_distance(points)
    inside = distance < 0
    if inside.any():
        depth = -distance.min()
        centre = surface.signed_distance(placement.centre_mm[None])[0]
        raise ValueError(
            f"{inside.sum()} of {len(points)} elements of {coil.name!r} lie inside the head, "
            f"the deepest {depth:.2f} mm below the scalp; the coil centre is {centre:+.2f} mm "
            f"from the scalp (positive outside), so a distance_mm of at least about "
            f"{centre + depth:.2f} is needed")
    return float(distance.min())


# --- input checks -----------------------------------------------------------------------

def _check_matsimnibs(m: np.ndarray) -> None:
    if m.shape != (4, 4):
        raise ValueError(f"matsimnibs must be 4x4, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("matsimnibs contains NaN or infinite values")
    if np.abs(m[3] - [0.0, 0.0, 0.0, 1.0]).max() > ORTHONORMAL_TOL:
        raise ValueError(f"matsimnibs' last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    rotation = m[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > ORTHONORMAL_TOL:
        raise ValueError(f"matsimnibs' axes (columns 0-2) are not orthonormal "
                         f"(max |R^T R - I| = {error:.2e})")
    if np.linalg.det(rotation) < 0:
        raise ValueError("matsimnibs' axes are left-handed (det = -1); need x = y cross z")


def _handle_axis(centre: np.ndarray, handle: np.ndarray | None, z: np.ndarray) -> np.ndarray:
    """Unit y: the handle direction made perpendicular to z."""
    if handle is None:
        direction = DEFAULT_HANDLE
        if np.linalg.norm(direction - (direction @ z) * z) < 0.3:
            direction = FALLBACK_HANDLE
    else:
        direction = handle - centre
        if np.linalg.norm(direction) < 1e-9:
            raise ValueError("handle coincides with centre; it must be a point the handle "
                             "points towards")
        direction = direction / np.linalg.norm(direction)
    y = direction - (direction @ z) * z
    if np.linalg.norm(y) < 1e-2:
        raise ValueError("handle lies (nearly) along the scalp normal through the centre; "
                         "it cannot define the handle direction")
    return y / np.linalg.norm(y)


# --- outer surface geometry -------------------------------------------------------------

def _may_matter(mesh: TetMesh, surface: "Surface", points: np.ndarray) -> np.ndarray:
    """Mask of the points whose exact signed distance can matter to the clearance check.

    A point may be inside the head only if it lies within the largest barycentre-to-corner
    distance of some tetrahedron's barycentre; and the point closest to the scalp has a
    nearest triangle centroid within (smallest such distance) + (largest centroid-to-corner
    distance). Every other point is outside and not the closest, so it needs no exact test.
    """
    tree, reach = tet_index(mesh)
    near_centroid = surface.tree.query(points)[0]
    maybe_inside = np.isfinite(tree.query(points, distance_upper_bound=reach)[0])
    return maybe_inside | (near_centroid <= near_centroid.min() + surface.reach)
