"""Independent versions, proven with real builds and real installs.

* ``ruvector-rabitq`` built at a bumped version (from a copy of the sources
  with only that crate's version changed; the repository is not touched)
  ships alone: it upgrades an environment holding the current wheels of
  every other component, ``ruvector-common`` and the meta package, leaves
  them as they were, and every component still does its real work;
* a ``ruvector-common`` whose exception contract is older than the one the
  wheels were built against (``ERRORS_ABI`` 0) is refused by pip's resolver
  (the components require ``ruvector-common>=0.1``), and if it is forced in
  anyway, importing a component is the clear ``ImportError`` the README
  documents, never a crash.

The one native build here reuses the build's ``target/`` (``CARGO_TARGET_DIR``)
and a fixed copy location, so only the three copied crates are compiled again.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest
from conftest import DIST, NATIVE, PACKAGES, ROOT, SMOKE, Package, Venv, make_venv, run, wheel_of

RABITQ = next(p for p in PACKAGES if p.dist == "ruvector-rabitq")
COMMON = next(p for p in PACKAGES if p.dist == "ruvector-common")
#: Where the sources are copied for the bumped build: inside target/ (ignored
#: by git) and always the same path, so cargo reuses what it built last time.
BUMP_SRC = ROOT / "target" / "release-tests" / "bumped-src"
TOP_LEVEL_SKIPPED = ("target", "dist", ".git", ".nox", ".venv", "bench", "docs", ".mypy_cache", ".hypothesis")


def _copy_ignore(directory: str, names: List[str]) -> Set[str]:
    """The sources only: no build outputs, virtualenvs or caches."""
    skipped = {n for n in names if n == "__pycache__"}
    if Path(directory) == ROOT:
        skipped |= {n for n in names if n.startswith(TOP_LEVEL_SKIPPED)}
    return skipped


def _crate_version(cargo_toml: Path) -> str:
    match = re.search(r'^version = "([^"]+)"', cargo_toml.read_text("utf-8"), flags=re.MULTILINE)
    assert match, cargo_toml
    return match.group(1)


def _bump_minor(version: str) -> str:
    major, minor, _ = (int(x) for x in version.split("."))
    return f"{major}.{minor + 1}.0"


def _installed(env: Venv) -> Dict[str, str]:
    listing = env.python_run("-m", "pip", "list", "--format", "freeze")
    return {n.lower(): v for n, _, v in (line.partition("==") for line in listing.splitlines())}


def _smoke(env: Venv, dist: str, version: str, model_root: Path) -> str:
    extra = {"RUVECTOR_MODELS": str(model_root), "RUVECTOR_OFFLINE": "1"}
    out = env.python_run(str(SMOKE), dist, "--version", version, env=extra)
    assert out.startswith(f"smoke ok: {dist} {version} "), out
    return out


@pytest.fixture(scope="module")
def bumped_rabitq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ruvector-rabitq wheel at the next minor version, built with the
    same options as ``nox -s build`` from a copy of the sources."""
    shutil.rmtree(BUMP_SRC, ignore_errors=True)
    shutil.copytree(ROOT, BUMP_SRC, ignore=_copy_ignore, symlinks=True)
    cargo_toml = BUMP_SRC / RABITQ.path.relative_to(ROOT) / "Cargo.toml"
    old = _crate_version(cargo_toml)
    new = _bump_minor(old)
    text = cargo_toml.read_text("utf-8")
    cargo_toml.write_text(text.replace(f'version = "{old}"', f'version = "{new}"', 1), "utf-8")
    out = tmp_path_factory.mktemp("bumped")
    # nox's tests session names the build session's maturin: cargo reuses
    # its compiled dependencies only under the same zig linker wrapper.
    maturin = os.environ.get("RUVECTOR_MATURIN") or shutil.which("maturin", path=str(Path(sys.executable).parent))
    assert maturin, "maturin is not installed (noxfile.py RELEASE_TEST_DEPS)"
    args = [maturin, "build", "--release", "-m", str(cargo_toml), "-o", str(out)]
    if sys.platform == "linux" and platform.machine() == "x86_64":
        args[2:2] = ["--zig", "--compatibility", "manylinux2014"]
    env = {
        # The build's target/: every dependency is already compiled there.
        "CARGO_TARGET_DIR": os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")),
        # maturin finds zig as `python -m ziglang` of the first python on PATH.
        "PATH": os.pathsep.join([str(Path(maturin).parent), os.environ.get("PATH", "")]),
    }
    run(args, env=env, timeout=3600)
    wheels = list(out.glob("ruvector_rabitq-*.whl"))
    assert [w.name.split("-")[1] for w in wheels] == [new], wheels
    return wheels[0]


def test_a_bumped_component_ships_alone_beside_the_current_others(
    bumped_rabitq: Path, tmp_path: Path, numpy_wheelhouse: Path, model_root: Path
) -> None:
    new = bumped_rabitq.name.split("-")[1]
    current = {p.dist: wheel_of(p).name.split("-")[1] for p in PACKAGES}
    assert new != current["ruvector-rabitq"]
    env = make_venv(tmp_path / "venv")
    local = ["--no-index", "--find-links", str(numpy_wheelhouse)]
    env.pip("install", "-q", *local, "--find-links", str(DIST), "ruvector[all]")
    assert {d: _installed(env)[d] for d in current} == current

    # The new rabitq alone, from a folder holding only it: nothing else moves.
    bumped_dir = bumped_rabitq.parent
    env.pip("install", "-q", *local, "--find-links", str(bumped_dir), "--upgrade", "ruvector-rabitq")
    after = _installed(env)
    assert after["ruvector-rabitq"] == new
    assert {d: after[d] for d in current if d != "ruvector-rabitq"} == {
        d: v for d, v in current.items() if d != "ruvector-rabitq"
    }
    assert "No broken requirements found." in env.python_run("-m", "pip", "check")

    # The compiled module is the new build, and everything still works.
    version = env.python_run("-c", "import ruvector_rabitq as r; print(r.__version__)").strip()
    assert version == new
    versions = env.python_run("-c", "import ruvector, json; print(json.dumps(ruvector.versions()))")
    assert f'"ruvector-rabitq": "{new}"' in versions, versions
    _smoke(env, "ruvector-rabitq", new, model_root)
    _smoke(env, "ruvector", current["ruvector"], model_root)
    for package in NATIVE:
        if package.dist != "ruvector-rabitq":
            _smoke(env, package.dist, current[package.dist], model_root)


@pytest.fixture(scope="module")
def old_common(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ruvector-common from before the wheels' contract: version 0.0.9,
    ``ERRORS_ABI = 0`` (as a release made before ERRORS_ABI 1 would say)."""
    src = tmp_path_factory.mktemp("old-common") / "ruvector-common"
    shutil.copytree(COMMON.path, src, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = src / "pyproject.toml"
    pyproject.write_text(pyproject.read_text("utf-8").replace('version = "0.1.0"', 'version = "0.0.9"', 1), "utf-8")
    errors = src / "src" / "ruvector_common" / "errors.py"
    text = errors.read_text("utf-8")
    assert "ERRORS_ABI: Final[int] = 1\n" in text
    errors.write_text(text.replace("ERRORS_ABI: Final[int] = 1\n", "ERRORS_ABI: Final[int] = 0\n"), "utf-8")
    out = tmp_path_factory.mktemp("old-common-wheel")
    tool = make_venv(tmp_path_factory.mktemp("pip-wheel"))
    tool.pip("wheel", "-q", "--no-deps", "-w", str(out), str(src))
    wheels = list(out.glob("ruvector_common-0.0.9-*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_pip_refuses_a_too_old_ruvector_common(old_common: Path, tmp_path: Path, numpy_wheelhouse: Path) -> None:
    house = tmp_path / "house"
    house.mkdir()
    shutil.copy(old_common, house)
    shutil.copy(wheel_of(RABITQ), house)
    env = make_venv(tmp_path / "venv")
    out = env.pip_fails(
        "install", "--no-index", "--find-links", str(house), "--find-links", str(numpy_wheelhouse), "ruvector-rabitq"
    )
    assert re.search(r"ruvector-common\s*(<1,>=0\.1|>=0\.1,<1)", out), out
    assert "0.0.9" in out, out


@pytest.mark.parametrize("package", NATIVE, ids=lambda p: p.dist)
def test_a_forced_too_old_ruvector_common_is_a_clear_import_error(
    package: Package, old_common: Path, tmp_path: Path, numpy_wheelhouse: Path
) -> None:
    env = make_venv(tmp_path / "venv")
    local = ["--no-index", "--find-links", str(numpy_wheelhouse), "--find-links", str(DIST)]
    env.pip("install", "-q", *local, f"ruvector[{package.dist.split('-', 1)[1]}]")
    env.pip("install", "-q", "--no-deps", "--force-reinstall", str(old_common))
    check = subprocess.run([env.python, "-m", "pip", "check"], capture_output=True, text=True, check=False)
    assert check.returncode != 0 and "ruvector-common" in check.stdout, check.stdout
    expected = (
        f"{package.dist} needs ruvector-common with ERRORS_ABI >= 1, but the installed one has "
        "ERRORS_ABI = 0; upgrade it with: pip install -U ruvector-common"
    )
    code = (
        "import sys\n"
        f"try:\n    import {package.module}\n"
        "except ImportError as e:\n    print('IMPORTERROR', e)\n"
        "else:\n    print('IMPORTED')\n"
    )
    out = env.python_run("-c", code)
    assert out.strip() == f"IMPORTERROR {expected}", out
    # Through the front door: the same error, not a MissingComponentError.
    name = {"ruvector-rabitq": "RabitqPlusIndex", "ruvector-lake": "RuLake", "ruvector-embed": "Embedder"}.get(
        package.dist, "A2aClient"
    )
    code = f"import ruvector\ntry:\n    ruvector.{name}\nexcept ImportError as e:\n    print(type(e).__name__, e)\n"
    out = env.python_run("-c", code)
    assert out.strip() == f"ImportError {expected}", out
