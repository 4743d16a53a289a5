"""The packages' layering, read from the source: tmsim_io (shared file output) imports none of
the others, efield and neurons know nothing of each other or of coupling, no module imports
another in a circle (imports inside functions included), and no module imports another module's
private name."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tmsim_io", "efield", "neurons", "coupling")
FORBIDDEN = {"tmsim_io": {"efield", "neurons", "coupling"}, "efield": {"neurons", "coupling"},
             "neurons": {"efield", "coupling"}, "coupling": set()}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import statement of the file."""
    module, is_package = _module_name(path), path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            out += [(target, alias.name) for alias in node.names]
    return out


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).glob("*.py"))}


MODULES = _sources()


def _project_target(target: str, name: str | None) -> str | None:
    """The project module an import refers to (a submodule when `from package import module`)."""
    if name is not None and f"{target}.{name}" in MODULES:
        return f"{target}.{name}"
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        graph[module] = {t for target, name in _imports(path)
                         if (t := _project_target(target, name)) is not None and t != module}
    return graph


@pytest.mark.parametrize("module", sorted(MODULES))
def test_lower_packages_do_not_import_upper_or_sibling_ones(module):
    package = module.split(".")[0]
    bad = {target for target, _ in _imports(MODULES[module]) if target.split(".")[0] in FORBIDDEN[package]}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_no_import_circles():
    graph, circles = _graph(), []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # a package's __init__ re-exporting its modules is not a circle of its own
    circles = [c for c in circles if not any(m in PACKAGES for m in c)]
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{module}: {target}.{name}" for module, path in MODULES.items()
           for target, name in _imports(path)
           if name and name.startswith("_") and not name.startswith("__") and _project_target(target, name)]
    assert not bad, "private names used outside their module: " + ", ".join(bad)


def test_the_checker_sees_a_circle_and_a_private_import(tmp_path, monkeypatch):
    """The rules above can fail: a made-up package with a circle and a private import."""
    pkg = tmp_path / "coupling"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _helper\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    modules = {_module_name(p): p for p in sorted(pkg.glob("*.py"))}
    monkeypatch.setattr(__import__(__name__), "MODULES", modules)
    assert _graph() == {"coupling": set(), "coupling.a": {"coupling.b"}, "coupling.b": {"coupling.a"}}
    with pytest.raises(AssertionError, match="coupling.a -> coupling.b -> coupling.a"):
        test_no_import_circles()
    with pytest.raises(AssertionError, match=r"coupling.b._helper"):
        test_no_private_name_is_imported_from_another_module()
