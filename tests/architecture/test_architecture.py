"""The rules of ARCHITECTURE.md, checked on the source tree.

Which crate may depend on which, that the engine links no Python, and that
every wheel has the same shape. Reads ``cargo metadata`` / ``cargo tree``
(no build) and the files of each package.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test environments run 3.11+
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
ROLES = {"core", "engine", "wheel", "tool"}
PYTHON_RUNTIME = {"pyo3", "numpy", "tokio"}


@functools.cache
def _metadata() -> Dict[str, Any]:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    parsed: Dict[str, Any] = json.loads(out.stdout)
    return parsed


def _packages() -> Dict[str, Dict[str, Any]]:
    return {p["name"]: p for p in _metadata()["packages"]}


def _role(package: Dict[str, Any]) -> str:
    meta: Dict[str, Any] = package.get("metadata") or {}
    section: Dict[str, Any] = meta.get("ruvector") or {}
    role = section.get("role")
    assert role in ROLES, f"{package['name']}: [package.metadata.ruvector] role must be one of {sorted(ROLES)}"
    return str(role)


def _by_role(role: str) -> List[str]:
    return sorted(name for name, p in _packages().items() if _role(p) == role)


def _local_deps(name: str) -> Set[str]:
    local = set(_packages())
    deps = _packages()[name]["dependencies"]
    return {d["name"] for d in deps if d["name"] in local and d.get("kind") in (None, "normal")}


def _wheel_dir(name: str) -> Path:
    return Path(_packages()[name]["manifest_path"]).parent


def _short(name: str) -> str:
    return name.removeprefix("ruvector-py-")


def test_every_crate_has_a_role_and_the_names_tell_it() -> None:
    assert _by_role("core") == ["ruvector-py-core"]
    assert _by_role("engine") == ["ruvector-py-index"]
    wheels = _by_role("wheel")
    assert wheels == ["ruvector-py-a2a", "ruvector-py-embed", "ruvector-py-lake", "ruvector-py-rabitq"]
    for name in wheels:
        assert (_wheel_dir(name) / "pyproject.toml").is_file(), name
    for name in _by_role("core") + _by_role("engine") + _by_role("tool"):
        assert not (Path(_packages()[name]["manifest_path"]).parent / "pyproject.toml").exists(), name


def test_no_wheel_depends_on_another_wheel() -> None:
    wheels = set(_by_role("wheel"))
    for name in wheels:
        assert not (_local_deps(name) & wheels), f"{name} depends on {sorted(_local_deps(name) & wheels)}"


def test_the_core_depends_on_no_engine_and_no_wheel() -> None:
    assert _local_deps("ruvector-py-core") == set()


def test_the_engine_depends_only_on_the_core() -> None:
    for name in _by_role("engine"):
        assert _local_deps(name) <= {"ruvector-py-core"}, name


@pytest.mark.parametrize("engine", ["ruvector-py-index", "ruvector-py-core"])
def test_the_engine_and_the_pure_core_link_no_python(engine: str) -> None:
    out = subprocess.run(
        ["cargo", "tree", "-p", engine, "-e", "normal", "--prefix", "none", "--locked"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    crates = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert engine in crates
    assert not (crates & PYTHON_RUNTIME), f"{engine} pulls {sorted(crates & PYTHON_RUNTIME)}"


def _pyproject(path: Path) -> Dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _requirement_names(reqs: List[str]) -> Set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in reqs}


def test_python_distributions_depend_downward_only() -> None:
    ours = {"ruvector", "ruvector-common"} | {f"ruvector-{_short(w)}" for w in _by_role("wheel")}
    common = _pyproject(ROOT / "python" / "ruvector-common" / "pyproject.toml")
    assert not (_requirement_names(common["project"].get("dependencies", [])) & ours)
    for name in _by_role("wheel"):
        deps = _requirement_names(_pyproject(_wheel_dir(name) / "pyproject.toml")["project"]["dependencies"])
        assert deps & ours == {"ruvector-common"}, f"{name}: {sorted(deps & ours)}"
    meta = _pyproject(ROOT / "python" / "ruvector-meta" / "pyproject.toml")["project"]
    assert _requirement_names(meta["dependencies"]) & ours == {"ruvector-common"}


@pytest.mark.parametrize("name", ["ruvector-py-a2a", "ruvector-py-embed", "ruvector-py-lake", "ruvector-py-rabitq"])
def test_every_wheel_has_the_same_shape(name: str) -> None:
    short = _short(name)
    crate = _wheel_dir(name)
    package = crate / "python" / f"ruvector_{short}"
    for path in [
        crate / "README.md",
        crate / "src" / "lib.rs",
        crate / "src" / "error.rs",
        crate / "src" / "py_modules.rs",
        package / "__init__.py",
        package / "_native.pyi",
        package / "py.typed",
        ROOT / "tests" / short,
    ]:
        assert path.exists(), f"{name} lacks {path.relative_to(ROOT)}"
    pyproject = _pyproject(crate / "pyproject.toml")
    assert pyproject["project"]["name"] == f"ruvector-{short}"
    assert pyproject["tool"]["maturin"]["module-name"] == f"ruvector_{short}._native"
    assert pyproject["tool"]["maturin"]["python-source"] == "python"
    targets = {t["name"]: t for t in _packages()[name]["targets"]}
    lib = targets.get(f"ruvector_py_{short}")
    assert lib is not None and "cdylib" in lib["crate_types"], f"{name}: lib must be ruvector_py_{short} (cdylib)"
    lib_rs = (crate / "src" / "lib.rs").read_text()
    assert "ruvector_py_core::init_module(" in lib_rs and "error::CLASSES" in lib_rs
    error_rs = (crate / "src" / "error.rs").read_text()
    # Own classes through the core's one declaration (enum, CLASSES, Display,
    # PyErr); none: the core's errors as they are. Never glue by hand.
    declared = "ruvector_py_core::wheel_error! {" in error_rs
    base_only = "pub use ruvector_py_core::errors::{Error, Result};" in error_rs and "pub const CLASSES" in error_rs
    assert declared != base_only, f"{name}: src/error.rs must use wheel_error! or re-export the core's Error"
    assert "for PyErr" not in error_rs, f"{name}: converts errors by hand; declare them with wheel_error!"
    meta = _pyproject(ROOT / "python" / "ruvector-meta" / "pyproject.toml")["project"]
    extra = meta["optional-dependencies"][short]
    assert _requirement_names(extra) == {f"ruvector-{short}"}


def test_rust_imports_python_objects_only_in_py_modules() -> None:
    pattern = re.compile(r'\.import\(\s*"ruvector_')
    offenders: List[str] = []
    for rs in sorted((ROOT / "crates").glob("*/src/**/*.rs")):
        if rs.name == "py_modules.rs":
            continue
        if pattern.search(rs.read_text()):
            offenders.append(str(rs.relative_to(ROOT)))
    assert not offenders, f"import SDK Python modules through py_modules.rs: {offenders}"
