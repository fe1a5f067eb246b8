"""Tests of the shared exception hierarchy in the installed ``ruvector-common``.

The class names, bases and constructor signatures tested here are a contract
with the compiled wheels (they import the classes by name from Rust), so these
tests pin them exactly.
"""

from __future__ import annotations

import builtins
import copy
import importlib.metadata
import pathlib
import pickle
import re
from typing import Any, Callable, Dict, List, Tuple, Type

import pytest

import ruvector_common
from ruvector_common import errors

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# Every class of the contract -> its exact direct bases, in order.
EXPECTED_BASES: Dict[str, Tuple[type, ...]] = {
    "RuVectorError": (Exception,),
    "InvalidArgument": (errors.RuVectorError, ValueError),
    "DimensionMismatch": (errors.InvalidArgument,),
    "NotFound": (errors.RuVectorError, LookupError),
    "VectorIndexError": (errors.RuVectorError,),
    "EmptyIndex": (errors.VectorIndexError, ValueError),
    "PersistError": (errors.VectorIndexError, OSError),
    "LakeError": (errors.RuVectorError,),
    "BackendError": (errors.LakeError, RuntimeError),
    "CacheMissError": (errors.LakeError, LookupError),
    "WitnessMismatch": (errors.LakeError, ValueError),
    "EmbedError": (errors.RuVectorError,),
    "A2aError": (errors.RuVectorError,),
    "CardSignatureInvalid": (errors.A2aError,),
    "PolicyViolation": (errors.A2aError, ValueError),
    "BudgetExceeded": (errors.A2aError,),
    "TransportError": (errors.A2aError, ConnectionError),
    "MissingComponentError": (errors.RuVectorError, ImportError),
}

# The most specific builtin exception each class also is.
EXPECTED_BUILTIN: Dict[str, Type[BaseException]] = {
    "RuVectorError": Exception,
    "InvalidArgument": ValueError,
    "DimensionMismatch": ValueError,
    "NotFound": LookupError,
    "VectorIndexError": Exception,
    "EmptyIndex": ValueError,
    "PersistError": OSError,
    "LakeError": Exception,
    "BackendError": RuntimeError,
    "CacheMissError": LookupError,
    "WitnessMismatch": ValueError,
    "EmbedError": Exception,
    "A2aError": Exception,
    "CardSignatureInvalid": Exception,
    "PolicyViolation": ValueError,
    "BudgetExceeded": Exception,
    "TransportError": ConnectionError,
    "MissingComponentError": ImportError,
}

CLASS_NAMES = sorted(EXPECTED_BASES)

# Builtin exception classes that must NOT be bases of the named class (the
# tempting-but-wrong choices).
FORBIDDEN_BUILTIN: Dict[str, Tuple[Type[BaseException], ...]] = {
    "NotFound": (KeyError, IndexError),
    "VectorIndexError": (IndexError, ValueError, OSError),
    "CacheMissError": (KeyError,),
    "RuVectorError": (ValueError, LookupError, OSError, RuntimeError, ImportError),
}


def _cls(name: str) -> Type[errors.RuVectorError]:
    cls = getattr(errors, name)
    assert isinstance(cls, type) and issubclass(cls, errors.RuVectorError)
    return cls


def _make(name: str, message: str = "boom") -> errors.RuVectorError:
    """Build one instance of class ``name`` with every attribute set."""
    if name == "DimensionMismatch":
        return errors.DimensionMismatch(message, expected=128, got=64)
    if name == "NotFound":
        return errors.NotFound(message, key=42)
    if name == "PersistError":
        return errors.PersistError(message, path="/tmp/index.rbpx")
    if name == "BackendError":
        return errors.BackendError(message, backend="s3")
    if name == "MissingComponentError":
        return errors.MissingComponentError("ruvector.RuLake", "lake", "ruvector-lake")
    return _cls(name)(message)


def _attributes(e: BaseException) -> Dict[str, Any]:
    """The contract attributes of ``e`` that must survive copying."""
    names = ["message", "expected", "got", "key", "path", "backend"]
    names += ["name_requested", "extra", "dist", "name"]
    return {n: getattr(e, n) for n in names if hasattr(e, n)}


# -- module surface ---------------------------------------------------------


def test_errors_abi_is_int_one() -> None:
    assert errors.ERRORS_ABI == 1
    assert type(errors.ERRORS_ABI) is int
    assert ruvector_common.ERRORS_ABI == 1


def test_all_lists_exactly_the_contract() -> None:
    assert sorted(errors.__all__) == sorted([*EXPECTED_BASES, "ERRORS_ABI"])
    assert len(errors.__all__) == len(set(errors.__all__))


def test_package_reexports_every_name_identically() -> None:
    for name in errors.__all__:
        assert getattr(ruvector_common, name) is getattr(errors, name), name
    assert sorted(ruvector_common.__all__) == sorted([*errors.__all__, "__version__"])


def test_star_import_gives_the_contract() -> None:
    namespace: Dict[str, Any] = {}
    exec("from ruvector_common import *", namespace)
    assert namespace["RuVectorError"] is errors.RuVectorError
    assert namespace["PersistError"] is errors.PersistError
    assert namespace["__version__"] == ruvector_common.__version__


def test_version_matches_installed_metadata_and_pyproject() -> None:
    installed = importlib.metadata.version("ruvector-common")
    assert ruvector_common.__version__ == installed
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", installed)
    pyproject = REPO_ROOT / "python" / "ruvector-common" / "pyproject.toml"
    if pyproject.is_file():
        declared = re.search(r'(?m)^version\s*=\s*"([^"]+)"', pyproject.read_text("utf-8"))
        assert declared is not None
        assert declared.group(1) == installed


def test_unknown_module_attribute_raises_attribute_error() -> None:
    missing = "nope"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(ruvector_common, missing)
    assert not hasattr(ruvector_common, "IndexError")


def test_py_typed_marker_is_installed() -> None:
    package_dir = pathlib.Path(ruvector_common.__file__).parent
    assert (package_dir / "py.typed").is_file()


# -- hierarchy --------------------------------------------------------------


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_exact_bases(name: str) -> None:
    assert _cls(name).__bases__ == EXPECTED_BASES[name]


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_is_ruvector_error_and_expected_builtin(name: str) -> None:
    cls = _cls(name)
    assert issubclass(cls, errors.RuVectorError)
    assert issubclass(cls, EXPECTED_BUILTIN[name])
    assert issubclass(cls, Exception)
    instance = _make(name)
    assert isinstance(instance, errors.RuVectorError)
    assert isinstance(instance, EXPECTED_BUILTIN[name])


@pytest.mark.parametrize("name", sorted(FORBIDDEN_BUILTIN))
def test_not_the_tempting_wrong_builtin(name: str) -> None:
    for wrong in FORBIDDEN_BUILTIN[name]:
        assert not issubclass(_cls(name), wrong), (name, wrong)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_no_name_shadows_a_builtin(name: str) -> None:
    assert not hasattr(builtins, name)
    assert _cls(name).__name__ == name
    assert _cls(name).__module__ == "ruvector_common.errors"


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_every_class_has_a_docstring_naming_its_builtin(name: str) -> None:
    doc = _cls(name).__doc__
    assert doc is not None and "raised" in doc.lower()
    builtin_name = EXPECTED_BUILTIN[name].__name__
    assert builtin_name in doc, (name, builtin_name)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_raise_and_catch_as_builtin(name: str) -> None:
    with pytest.raises(EXPECTED_BUILTIN[name]) as info:
        raise _make(name)
    assert type(info.value) is _cls(name)


def test_catching_the_root_catches_every_class() -> None:
    caught: List[str] = []
    for name in CLASS_NAMES:
        try:
            raise _make(name)
        except errors.RuVectorError as e:
            caught.append(type(e).__name__)
    assert caught == CLASS_NAMES


# -- messages and attributes -------------------------------------------------

MESSAGES = [
    "",
    "plain",
    "query has dimension 64, but the index has dimension 128",
    "quote ' and \" and %s and {braces}",
    "multi\nline",
    "unicode: vecteur \u00e9 \u2192 \U0001f600",
]


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("name", [n for n in CLASS_NAMES if n != "MissingComponentError"])
def test_str_is_exactly_the_message(name: str, message: str) -> None:
    e = _make(name, message)
    assert str(e) == message
    assert e.message == message
    assert e.args == (message,)


def test_single_positional_argument_like_pyo3_new_err() -> None:
    for name in CLASS_NAMES:
        if name == "MissingComponentError":
            continue
        e = _cls(name)("only a message")
        assert str(e) == "only a message"
    assert errors.DimensionMismatch("m").expected is None
    assert errors.DimensionMismatch("m").got is None
    assert errors.NotFound("m").key is None
    assert errors.PersistError("m").path is None
    assert errors.BackendError("m").backend is None


def test_dimension_mismatch_attributes() -> None:
    e = errors.DimensionMismatch("dims differ", 128, 64)  # positional, as Rust passes
    assert (e.expected, e.got) == (128, 64)
    assert str(e) == "dims differ"
    k = errors.DimensionMismatch("dims differ", expected=3, got=4)
    assert (k.expected, k.got) == (3, 4)
    assert repr(k) == "DimensionMismatch('dims differ', 3, 4)"


def test_not_found_attributes_and_str_has_no_quotes() -> None:
    e = errors.NotFound("id 7 is not in the index", 7)
    assert e.key == 7
    assert str(e) == "id 7 is not in the index"
    assert not isinstance(e, KeyError)
    assert errors.NotFound("missing", key="docs").key == "docs"


def test_persist_error_is_a_quiet_oserror() -> None:
    e = errors.PersistError("/tmp/x.rbpx: truncated", "/tmp/x.rbpx")
    assert str(e) == "/tmp/x.rbpx: truncated"
    assert e.path == "/tmp/x.rbpx"
    # OSError's special handling of 2-5 arguments must not kick in.
    assert e.errno is None
    assert e.strerror is None
    assert e.filename is None
    assert e.args == ("/tmp/x.rbpx: truncated",)
    assert isinstance(e, OSError) and isinstance(e, errors.VectorIndexError)


def test_persist_error_accepts_path_like() -> None:
    e = errors.PersistError("bad", path=pathlib.PurePosixPath("/data/i.rbpx"))
    assert e.path == "/data/i.rbpx"
    assert type(e.path) is str


def test_persist_error_is_not_remapped_by_oserror() -> None:
    # OSError(errno, ...) picks a subclass such as FileNotFoundError; a
    # PersistError must stay a PersistError whatever its arguments.
    e = errors.PersistError("2", "2")
    assert type(e) is errors.PersistError
    assert not isinstance(e, FileNotFoundError)


def test_backend_error_attributes() -> None:
    e = errors.BackendError("upstream timed out", "s3")
    assert e.backend == "s3"
    assert str(e) == "upstream timed out"
    assert isinstance(e, RuntimeError)


def test_transport_error_is_connection_error_and_oserror() -> None:
    e = errors.TransportError("connection refused")
    assert isinstance(e, ConnectionError) and isinstance(e, OSError)
    assert str(e) == "connection refused"
    assert e.errno is None


def test_missing_component_error_message_and_attributes() -> None:
    e = errors.MissingComponentError("ruvector.RuLake", "lake", "ruvector-lake")
    assert str(e) == (
        "ruvector.RuLake is provided by the optional 'ruvector-lake' package, "
        "which is not installed; install it with: pip install 'ruvector[lake]' "
        "(or: pip install ruvector-lake)"
    )
    assert e.name_requested == "ruvector.RuLake"
    assert e.extra == "lake"
    assert e.dist == "ruvector-lake"
    # ImportError.name keeps its meaning: the module that could not be imported.
    assert e.name == "ruvector_lake"
    assert e.msg == str(e)
    assert isinstance(e, ImportError) and not isinstance(e, ModuleNotFoundError)


def test_missing_component_error_explicit_module() -> None:
    e = errors.MissingComponentError("ruvector.X", "x", "ruvector-x", "rvx_native")
    assert e.name == "rvx_native"
    assert e.dist == "ruvector-x"


# -- pickling and copying ----------------------------------------------------


def _check_same(original: BaseException, clone: BaseException) -> None:
    assert clone is not original
    assert type(clone) is type(original)
    assert str(clone) == str(original)
    assert clone.args == original.args
    assert _attributes(clone) == _attributes(original)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_pickle_round_trip(name: str, protocol: int) -> None:
    original = _make(name, "it broke: 'x'")
    _check_same(original, pickle.loads(pickle.dumps(original, protocol=protocol)))


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_copy_round_trip(name: str, copier: Callable[[Any], Any]) -> None:
    original = _make(name)
    _check_same(original, copier(original))


def test_pickle_keeps_concrete_attribute_values() -> None:
    d = pickle.loads(pickle.dumps(errors.DimensionMismatch("m", 768, 384)))
    assert (d.expected, d.got, str(d)) == (768, 384, "m")
    n = pickle.loads(pickle.dumps(errors.NotFound("m", key=("local", "docs"))))
    assert n.key == ("local", "docs")
    p = pickle.loads(pickle.dumps(errors.PersistError("m", "/a/b")))
    assert (p.path, p.errno, p.filename, str(p)) == ("/a/b", None, None, "m")
    b = pickle.loads(pickle.dumps(errors.BackendError("m", "fs")))
    assert b.backend == "fs"
    m = pickle.loads(pickle.dumps(errors.MissingComponentError("ruvector.Embedder", "embed", "ruvector-embed")))
    assert (m.name_requested, m.extra, m.dist, m.name) == (
        "ruvector.Embedder",
        "embed",
        "ruvector-embed",
        "ruvector_embed",
    )
    assert "pip install 'ruvector[embed]'" in str(m)


def test_pickle_keeps_extra_instance_state() -> None:
    e = errors.DimensionMismatch("m", 1, 2)
    e.context = {"collection": "docs"}  # type: ignore[attr-defined]
    clone = pickle.loads(pickle.dumps(e))
    assert clone.context == {"collection": "docs"}
    assert (clone.expected, clone.got) == (1, 2)


def test_pickle_after_raise_drops_nothing_important() -> None:
    try:
        raise errors.PersistError("disk full", "/var/idx")
    except errors.PersistError as e:
        clone = pickle.loads(pickle.dumps(e))
    assert (type(clone), str(clone), clone.path) == (errors.PersistError, "disk full", "/var/idx")
