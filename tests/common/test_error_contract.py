"""The exception contract between the wheels and ``ruvector-common``.

``ruvector_common.errors.__all__`` is the one list of exception classes.
Each wheel reports the classes its Rust code can raise
(``_native._error_classes``, made from the base classes of the core and the
wheel's own ``error::CLASSES``), and these tests fail when the two drift
apart — in either direction — or when a wheel starts without a usable
``ruvector-common``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Dict, List

import pytest

import ruvector_common.errors as errors

WHEELS = ["ruvector_rabitq", "ruvector_lake", "ruvector_embed", "ruvector_a2a"]
#: Classes raised from Python only (never by a wheel's Rust code).
PYTHON_ONLY = {"MissingComponentError"}


def _raised_by_wheels() -> Dict[str, List[str]]:
    raised: Dict[str, List[str]] = {}
    for wheel in WHEELS:
        native = importlib.import_module(f"{wheel}._native")
        classes: object = vars(native)["_error_classes"]
        assert isinstance(classes, list)
        raised[wheel] = [str(c) for c in classes]  # pyright: ignore[reportUnknownVariableType,reportUnknownArgumentType]
    return raised


def test_every_class_a_wheel_raises_is_in_the_contract() -> None:
    contract = set(errors.__all__)
    for wheel, classes in _raised_by_wheels().items():
        assert classes, wheel
        assert len(classes) == len(set(classes)), wheel
        missing = set(classes) - contract
        assert not missing, f"{wheel} raises classes ruvector_common.errors lacks: {sorted(missing)}"
        for name in classes:
            cls = getattr(errors, name)
            assert issubclass(cls, errors.RuVectorError), name


def test_every_class_in_the_contract_is_raised_somewhere() -> None:
    raised = {name for classes in _raised_by_wheels().values() for name in classes}
    classes = {name for name in errors.__all__ if name != "ERRORS_ABI"}
    unused = classes - raised - PYTHON_ONLY
    assert not unused, f"classes no wheel raises (remove them or raise them): {sorted(unused)}"
    assert not (PYTHON_ONLY & raised)


def test_each_wheel_raises_the_base_classes_and_only_its_own() -> None:
    raised = _raised_by_wheels()
    base = set(raised["ruvector_rabitq"])
    assert base == {
        "RuVectorError",
        "InvalidArgument",
        "DimensionMismatch",
        "NotFound",
        "VectorIndexError",
        "EmptyIndex",
        "PersistError",
    }
    own = {wheel: set(classes) - base for wheel, classes in raised.items()}
    assert own["ruvector_lake"] == {"LakeError", "BackendError", "CacheMissError", "WitnessMismatch"}
    assert own["ruvector_embed"] == {"EmbedError"}
    assert own["ruvector_a2a"] == {
        "A2aError",
        "CardSignatureInvalid",
        "PolicyViolation",
        "BudgetExceeded",
        "TransportError",
    }


@pytest.mark.parametrize("wheel", WHEELS)
def test_a_wheel_without_ruvector_common_names_the_distribution(wheel: str) -> None:
    # None in sys.modules makes the import fail as if the package were not
    # installed; the wheel's native module must say what to install.
    code = (
        "import sys\n"
        "sys.modules['ruvector_common'] = None\n"
        f"try:\n    import {wheel}\n"
        "except ImportError as e:\n    print('IMPORTERROR', e)\n"
        "else:\n    print('IMPORTED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("IMPORTERROR"), out.stdout + out.stderr
    assert "ruvector-common" in out.stdout
    assert "pip install" in out.stdout


@pytest.mark.parametrize("wheel", WHEELS)
def test_a_wheel_with_a_ruvector_common_lacking_its_classes_names_the_class(wheel: str) -> None:
    code = (
        "import ruvector_common.errors as e\n"
        "del e.InvalidArgument\n"
        f"try:\n    import {wheel}\n"
        "except ImportError as err:\n    print('IMPORTERROR', err)\n"
        "else:\n    print('IMPORTED')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.startswith("IMPORTERROR"), out.stdout + out.stderr
    assert "InvalidArgument" in out.stdout
    assert "pip install -U ruvector-common" in out.stdout
