"""Tests of the installed ``ruvector`` meta package.

They pass whether or not the ``ruvector-rabitq`` component is installed:
behaviour that depends on it is checked against what is really installed, and
the "installed" and "missing" cases are each also forced in a subprocess, by
blocking the component's import or by putting a small stand-in component
first on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Optional

import pytest

import ruvector
import ruvector_common.errors

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Names re-exported from ruvector_rabitq as they are. (ruvector.RabitqIndex
# is ruvector 0.1.4's RaBitQ+ index, kept under its name by ruvector._compat;
# see test_rabitq_index_is_the_014_class.)
RABITQ_NAMES = [
    "FlatF32Index",
    "RabitqPlusIndex",
    "RabitqAsymIndex",
    "IvfRabitqIndex",
    "SearchHit",
    "AnyIndex",
    "recommend",
    "Recommendation",
    "cpu_features",
]
EXCEPTION_NAMES = [n for n in ruvector_common.errors.__all__ if n != "ERRORS_ABI"]

RABITQ_INSTALLED = importlib.util.find_spec("ruvector_rabitq") is not None
# Every component the meta package knows, from its own table.
COMPONENT_KEYS = sorted(ruvector._COMPONENTS)  # pyright: ignore[reportPrivateUsage]
COMPONENT_DISTS = sorted(c.dist for c in ruvector._COMPONENTS.values())  # pyright: ignore[reportPrivateUsage]


def _dist_version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _missing_message(name: str) -> str:
    return (
        f"ruvector.{name} is provided by the optional 'ruvector-rabitq' package, "
        "which is not installed; install it with: pip install 'ruvector[rabitq]' "
        "(or: pip install ruvector-rabitq)"
    )


# A meta-path finder, run first in a subprocess, that makes the named modules
# look uninstalled: importing them raises ModuleNotFoundError as Python does.
BLOCKER = """
import sys
class _Blocker:
    blocked = set({blocked!r})
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {{fullname!r}}", name=fullname)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def run_python(
    code: str,
    tmp_path: pathlib.Path,
    *,
    block: tuple[str, ...] = (),
    pythonpath: Optional[pathlib.Path] = None,
) -> Any:
    """Run ``code`` in a fresh interpreter and return the JSON it printed last."""
    prelude = BLOCKER.format(blocked=sorted(block)) if block else ""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_fake_rabitq(root: pathlib.Path, body: str) -> pathlib.Path:
    """Write a stand-in ``ruvector_rabitq`` package under ``root``."""
    package = root / "fake" / "ruvector_rabitq"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(body), "utf-8")
    return root / "fake"


FAKE_COMPLETE = """
FAKE = True
class FlatF32Index: pass
class RabitqPlusIndex: pass
class RabitqAsymIndex: pass
class IvfRabitqIndex: pass
class SearchHit: pass
class AnyIndex: pass
class Recommendation: pass
def recommend(*args, **kwargs): return Recommendation()
def cpu_features(): return {"fake": True}
"""


# -- eager surface -----------------------------------------------------------


def test_every_exception_is_reexported_identically() -> None:
    assert len(EXCEPTION_NAMES) == 18
    for name in EXCEPTION_NAMES:
        assert getattr(ruvector, name) is getattr(ruvector_common.errors, name), name
        assert name in ruvector.__all__


def test_all_is_the_eager_surface() -> None:
    assert sorted(ruvector.__all__) == sorted([*EXCEPTION_NAMES, "available", "versions"])
    for name in [*RABITQ_NAMES, "rabitq"]:
        assert name not in ruvector.__all__


def test_version_is_the_meta_distribution_version() -> None:
    installed = importlib.metadata.version("ruvector")
    assert ruvector.__version__ == installed
    assert installed.startswith("0.")
    pyproject = REPO_ROOT / "python" / "ruvector-meta" / "pyproject.toml"
    if pyproject.is_file():
        declared = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text("utf-8"))
        assert declared is not None
        assert declared.group(1) == installed


def test_distribution_metadata_declares_extras() -> None:
    meta = importlib.metadata.metadata("ruvector")
    assert sorted(meta.get_all("Provides-Extra") or []) == [
        "a2a",
        "all",
        "embed",
        "lake",
        "langchain",
        "llamaindex",
        "mcp",
        "rabitq",
        "ray",
    ]
    by_extra: Dict[str, List[str]] = {}
    for requirement in importlib.metadata.requires("ruvector") or []:
        spec, _, marker = requirement.partition(";")
        found = re.search(r"""extra\s*==\s*['"]([a-z0-9]+)['"]""", marker)
        by_extra.setdefault(found.group(1) if found else "", []).append(spec.replace(" ", ""))
    assert by_extra == {
        "": ["ruvector-common>=0.1,<1"],
        "rabitq": ["ruvector-rabitq>=0.1,<1"],
        "lake": ["ruvector-lake>=0.1,<1"],
        "embed": ["ruvector-embed>=0.1,<1"],
        "a2a": ["ruvector-a2a>=0.1,<1"],
        "all": ["ruvector[rabitq,lake,embed,a2a]"],
        "mcp": ["ruvector[rabitq,embed]", "mcp>=2,<3"],
        "langchain": ["ruvector[rabitq]", "langchain-core>=1,<2"],
        "llamaindex": ["ruvector[rabitq]", "llama-index-core>=0.14,<0.15"],
        "ray": ["ruvector[rabitq,embed]", "ray[data]>=2.40,<3"],
    }


def test_unknown_attribute_is_a_plain_attribute_error() -> None:
    missing = "NoSuchThing"
    with pytest.raises(AttributeError) as info:
        getattr(ruvector, missing)
    assert str(info.value) == "module 'ruvector' has no attribute 'NoSuchThing'"
    assert type(info.value) is AttributeError
    assert hasattr(ruvector, "NoSuchThing") is False


def test_rabitq_index_is_the_014_class(tmp_path: pathlib.Path) -> None:
    out = run_python(
        """
        import json, sys
        import ruvector
        error = None
        try:
            ruvector.RabitqIndex
        except ruvector.MissingComponentError as e:
            error = [e.extra, e.name_requested]
        print(json.dumps({"error": error, "loaded": "ruvector_rabitq" in sys.modules}))
        """,
        tmp_path,
        block=("ruvector_rabitq",),
    )
    assert out == {"error": ["rabitq", "ruvector.RabitqIndex"], "loaded": False}
    if RABITQ_INSTALLED:
        assert ruvector.RabitqIndex.__module__ == "ruvector._compat"
        assert ruvector.RabitqIndex is not importlib.import_module("ruvector_rabitq").RabitqIndex


def test_own_names_load_nothing_until_used(tmp_path: pathlib.Path) -> None:
    out = run_python(
        """
        import json, sys
        import ruvector
        names = dir(ruvector)
        print(json.dumps({
            "listed": all(n in names for n in ("Collection", "QueryHit", "Record")) and "HnswIndex" not in names,
            "collection_error": ruvector.CollectionError is ruvector.RuVectorError,
            "loaded": sorted(m for m in sys.modules if m.startswith(("numpy", "ruvector_rabitq", "ruvector."))),
        }))
        """,
        tmp_path,
    )
    assert out == {"listed": True, "collection_error": True, "loaded": []}


def test_ray_module_without_ray_names_the_extra(tmp_path: pathlib.Path) -> None:
    out = run_python(
        """
        import json, sys
        import ruvector
        loaded_by_ruvector = "ray" in sys.modules
        try:
            import ruvector.ray
            result = None
        except ruvector.MissingComponentError as e:
            result = [e.extra, e.dist, e.name_requested, isinstance(e, ImportError)]
        print(json.dumps({"result": result, "loaded": loaded_by_ruvector}))
        """,
        tmp_path,
        block=("ray",),
    )
    assert out == {"result": ["ray", "ray", "ruvector.ray", True], "loaded": False}


def test_collection_without_rabitq_names_the_extra(tmp_path: pathlib.Path) -> None:
    out = run_python(
        """
        import json
        import ruvector
        try:
            ruvector.Collection
            result = None
        except ruvector.MissingComponentError as e:
            result = [e.extra, e.dist, str(e)]
        print(json.dumps(result))
        """,
        tmp_path,
        block=("ruvector_rabitq",),
    )
    assert out[:2] == ["rabitq", "ruvector-rabitq"]
    assert "pip install 'ruvector[rabitq]'" in out[2]


def test_dir_lists_eager_and_lazy_names() -> None:
    listing = dir(ruvector)
    assert listing == sorted(listing)
    for name in [*EXCEPTION_NAMES, *RABITQ_NAMES, "rabitq", "available", "versions", "__version__"]:
        assert name in listing, name


def test_py_typed_marker_is_installed() -> None:
    package_dir = pathlib.Path(ruvector.__file__).parent
    assert (package_dir / "py.typed").is_file()


# -- laziness ----------------------------------------------------------------


def test_import_loads_no_numpy_and_no_component(tmp_path: pathlib.Path) -> None:
    loaded = run_python(
        """
        import json, sys
        before = set(sys.modules)
        import ruvector
        dir(ruvector)
        ruvector.available()
        new = sorted(set(sys.modules) - before)
        print(json.dumps(new))
        """,
        tmp_path,
    )
    assert "ruvector" in loaded
    assert "ruvector_common.errors" in loaded
    heavy = [m for m in loaded if m.split(".")[0] in {"numpy", "ruvector_rabitq"}]
    assert heavy == []
    # Not even importlib.metadata: versions are read only when asked for.
    assert "importlib.metadata" not in loaded


def test_available_matches_find_spec() -> None:
    result = ruvector.available()
    assert result["rabitq"] == RABITQ_INSTALLED
    assert set(result) == set(COMPONENT_KEYS)
    assert all(type(v) is bool for v in result.values())


def test_versions_lists_only_installed_distributions() -> None:
    result = ruvector.versions()
    assert result["ruvector"] == importlib.metadata.version("ruvector")
    assert result["ruvector-common"] == importlib.metadata.version("ruvector-common")
    rabitq = _dist_version("ruvector-rabitq")
    if rabitq is None:
        assert "ruvector-rabitq" not in result
    else:
        assert result["ruvector-rabitq"] == rabitq
    assert set(result) <= {"ruvector", "ruvector-common", *COMPONENT_DISTS}
    assert all(isinstance(v, str) and v for v in result.values())


# -- component missing ---------------------------------------------------------


def test_missing_component_when_blocked(tmp_path: pathlib.Path) -> None:
    out = run_python(
        f"""
        import json, sys
        import ruvector
        report = {{}}
        for name in {[*RABITQ_NAMES, "rabitq"]!r}:
            try:
                getattr(ruvector, name)
            except ruvector.MissingComponentError as e:
                report[name] = {{
                    "message": str(e),
                    "extra": e.extra,
                    "dist": e.dist,
                    "name_requested": e.name_requested,
                    "module": e.name,
                    "is_import_error": isinstance(e, ImportError),
                    "is_ruvector_error": isinstance(e, ruvector.RuVectorError),
                    "cause": type(e.__cause__).__name__,
                    "cached": name in vars(ruvector),
                }}
        try:
            from ruvector import RabitqPlusIndex
            from_import = "no error"
        except ImportError as e:
            from_import = type(e).__name__
        print(json.dumps({{
            "report": report,
            "from_import": from_import,
            "available": ruvector.available(),
            "loaded": "ruvector_rabitq" in sys.modules,
        }}))
        """,
        tmp_path,
        block=("ruvector_rabitq",),
    )
    assert sorted(out["report"]) == sorted([*RABITQ_NAMES, "rabitq"])
    for name, info in out["report"].items():
        assert info == {
            "message": _missing_message(name),
            "extra": "rabitq",
            "dist": "ruvector-rabitq",
            "name_requested": f"ruvector.{name}",
            "module": "ruvector_rabitq",
            "is_import_error": True,
            "is_ruvector_error": True,
            "cause": "ModuleNotFoundError",
            "cached": False,
        }
    assert out["from_import"] == "MissingComponentError"
    assert out["available"]["rabitq"] is False
    assert out["loaded"] is False


def test_star_import_works_without_components(tmp_path: pathlib.Path) -> None:
    names = run_python(
        """
        import json
        namespace = {}
        exec("from ruvector import *", namespace)
        print(json.dumps(sorted(k for k in namespace if k != "__builtins__")))
        """,
        tmp_path,
        block=("ruvector_rabitq",),
    )
    assert names == sorted([*EXCEPTION_NAMES, "available", "versions"])


@pytest.mark.skipif(RABITQ_INSTALLED, reason="ruvector-rabitq is installed")
def test_missing_component_when_genuinely_not_installed() -> None:
    assert ruvector.available()["rabitq"] is False
    assert "ruvector-rabitq" not in ruvector.versions()
    with pytest.raises(ruvector.MissingComponentError) as info:
        ruvector.RabitqPlusIndex  # noqa: B018
    assert str(info.value) == _missing_message("RabitqPlusIndex")
    assert info.value.extra == "rabitq"
    with pytest.raises(ImportError, match=r"pip install 'ruvector\[rabitq\]'"):
        ruvector.rabitq  # noqa: B018
    assert "RabitqPlusIndex" not in vars(ruvector)


def test_broken_dependency_of_component_is_not_masked(tmp_path: pathlib.Path) -> None:
    fake = write_fake_rabitq(tmp_path, "import ruvector_dependency_that_is_absent\n")
    out = run_python(
        """
        import json
        import ruvector
        try:
            ruvector.RabitqPlusIndex
            result = {"error": None}
        except Exception as e:
            result = {"error": type(e).__name__, "name": getattr(e, "name", None)}
        print(json.dumps(result))
        """,
        tmp_path,
        pythonpath=fake,
    )
    assert out == {"error": "ModuleNotFoundError", "name": "ruvector_dependency_that_is_absent"}


# -- component present -----------------------------------------------------------


def test_lazy_names_resolve_from_a_present_component(tmp_path: pathlib.Path) -> None:
    fake = write_fake_rabitq(tmp_path, FAKE_COMPLETE)
    out = run_python(
        f"""
        import json, sys
        import ruvector
        before = "ruvector_rabitq" in sys.modules
        available = ruvector.available()
        after_available = "ruvector_rabitq" in sys.modules
        index_cls = ruvector.RabitqPlusIndex
        import ruvector_rabitq
        same = {{n: getattr(ruvector, n) is getattr(ruvector_rabitq, n) for n in {RABITQ_NAMES!r}}}
        print(json.dumps({{
            "before": before,
            "available": available,
            "after_available": after_available,
            "fake": ruvector_rabitq.FAKE,
            "same": same,
            "cached": "RabitqPlusIndex" in vars(ruvector),
            "alias": ruvector.rabitq is ruvector_rabitq,
            "features": ruvector.cpu_features(),
        }}))
        """,
        tmp_path,
        pythonpath=fake,
    )
    assert out["before"] is False
    assert out["available"]["rabitq"] is True
    assert out["after_available"] is False
    assert out["fake"] is True
    assert out["same"] == {n: True for n in RABITQ_NAMES}
    assert out["cached"] is True
    assert out["alias"] is True
    assert out["features"] == {"fake": True}


def test_name_absent_from_an_old_component_is_an_attribute_error(tmp_path: pathlib.Path) -> None:
    fake = write_fake_rabitq(tmp_path, "class RabitqPlusIndex: pass\n")
    out = run_python(
        """
        import json
        import ruvector
        try:
            ruvector.RabitqAsymIndex
            result = None
        except AttributeError as e:
            result = [type(e).__name__, str(e), hasattr(ruvector, "RabitqAsymIndex")]
        print(json.dumps(result))
        """,
        tmp_path,
        pythonpath=fake,
    )
    assert out[0] == "AttributeError"
    assert out[1].startswith("module 'ruvector' has no attribute 'RabitqAsymIndex'")
    assert "pip install -U ruvector-rabitq" in out[1]
    assert out[2] is False


@pytest.mark.skipif(not RABITQ_INSTALLED, reason="ruvector-rabitq is not installed")
def test_installed_component_is_reexported() -> None:
    ruvector_rabitq = importlib.import_module("ruvector_rabitq")

    assert ruvector.available()["rabitq"] is True
    for name in RABITQ_NAMES:
        assert getattr(ruvector, name) is getattr(ruvector_rabitq, name), name
    assert ruvector.rabitq is ruvector_rabitq
    assert ruvector.versions()["ruvector-rabitq"] == importlib.metadata.version("ruvector-rabitq")


def test_exceptions_are_shared_with_the_component_namespace(tmp_path: pathlib.Path) -> None:
    # Whatever subset is installed, one except clause catches them all.
    out = run_python(
        """
        import json
        import ruvector, ruvector_common
        caught = []
        for cls in (ruvector_common.DimensionMismatch, ruvector_common.PersistError,
                    ruvector_common.MissingComponentError):
            try:
                raise cls("x")
            except ruvector.RuVectorError as e:
                caught.append(type(e).__name__)
        print(json.dumps(caught))
        """,
        tmp_path,
        block=("ruvector_rabitq",),
    )
    assert out == ["DimensionMismatch", "PersistError", "MissingComponentError"]


def _names_in_table() -> List[str]:
    table: Dict[str, Any] = vars(ruvector)["_COMPONENTS"]
    return [name for component in table.values() for name in component.names]


def test_lazy_table_has_no_duplicates_or_clashes() -> None:
    names = _names_in_table()
    assert set(RABITQ_NAMES) <= set(names)
    assert len(names) == len(set(names))
    assert not set(names) & set(ruvector.__all__)
