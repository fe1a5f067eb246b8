"""RuVector for Python: one namespace for every RuVector component.

The ``ruvector`` distribution is a thin, pure-Python front door. The actual
work is done by separately installed compiled components, chosen with extras::

    pip install 'ruvector[rabitq]'     # RaBitQ-quantised vector indexes
    pip install 'ruvector[all]'        # every component

Usage::

    import numpy as np
    import ruvector

    vectors = np.random.default_rng(0).standard_normal((10_000, 128)).astype(np.float32)
    index = ruvector.RabitqPlusIndex.build(vectors, seed=42, rerank_factor=20)
    try:
        for hit in index.search(vectors[0], k=5):
            print(hit.id, hit.score)
    except ruvector.RuVectorError as error:   # any RuVector failure
        print("search failed:", error)

    ruvector.available()   # {'rabitq': True}: which components are installed
    ruvector.versions()    # {'ruvector': '0.2.0', 'ruvector-common': '0.1.0', ...}

(See ``help(ruvector.RabitqPlusIndex)`` for the index API itself.)

Importing ``ruvector`` is cheap: it loads neither numpy nor any component.
A component is imported the first time one of its names (``ruvector.RabitqIndex``,
``ruvector.rabitq``, ...) is used. If that component is not installed, a
:class:`MissingComponentError` (an :class:`ImportError`) says which extra to
install. Every exception class of :mod:`ruvector_common.errors` is available
here directly, so ``except ruvector.RuVectorError`` works whichever components
are installed.
"""

import importlib as _importlib
import importlib.util as _importlib_util
import sys as _sys
import typing as _typing

from ruvector_common import errors as _errors

# Every exception class, eagerly: the one list is ruvector_common.errors.__all__.
from ruvector_common.errors import (
    A2aError,
    BackendError,
    BudgetExceeded,
    CacheMissError,
    CardSignatureInvalid,
    DimensionMismatch,
    EmbedError,
    EmptyIndex,
    InvalidArgument,
    LakeError,
    MissingComponentError,
    NotFound,
    PersistError,
    PolicyViolation,
    RuVectorError,
    TransportError,
    VectorIndexError,
    WitnessMismatch,
)

# Names that exist as soon as ``ruvector`` is imported. The lazily imported
# component names are deliberately not listed: ``from ruvector import *`` must
# work with any subset of the components installed.
# The exception classes are errors.__all__ without ERRORS_ABI (a contract
# detail of ruvector_common, not of the front door), written out so that type
# checkers and stubtest see what Python sees; tests/meta checks they agree.
__all__: list[str] = [
    "available",
    "versions",
    "RuVectorError",
    "InvalidArgument",
    "DimensionMismatch",
    "NotFound",
    "VectorIndexError",
    "EmptyIndex",
    "PersistError",
    "LakeError",
    "BackendError",
    "CacheMissError",
    "WitnessMismatch",
    "EmbedError",
    "A2aError",
    "CardSignatureInvalid",
    "PolicyViolation",
    "BudgetExceeded",
    "TransportError",
    "MissingComponentError",
]

_DIST_NAME = "ruvector"
_COMMON_DIST_NAME = "ruvector-common"
_UNKNOWN_VERSION = "0+unknown"


class _Component(_typing.NamedTuple):
    """One optional compiled component re-exported by ``ruvector``."""

    module: str
    """The component's import name, e.g. ``"ruvector_rabitq"``."""
    dist: str
    """The component's distribution name, e.g. ``"ruvector-rabitq"``."""
    names: tuple[str, ...]
    """The component's names re-exported as ``ruvector.<name>``."""


# The lazy re-export table. Each key is both the ``ruvector`` extra that
# installs the component and the attribute under which the component module
# itself is reachable (``ruvector.rabitq`` is ``ruvector_rabitq``). Adding a
# component means adding one entry here (and its names to the TYPE_CHECKING
# block at the end of this file).
_COMPONENTS: dict[str, _Component] = {
    "rabitq": _Component(
        module="ruvector_rabitq",
        dist="ruvector-rabitq",
        names=(
            "FlatF32Index",
            "RabitqPlusIndex",
            "RabitqAsymIndex",
            "IvfRabitqIndex",
            "SearchHit",
            "AnyIndex",
            "recommend",
            "Recommendation",
            "cpu_features",
        ),
    ),
    "lake": _Component(
        module="ruvector_lake",
        dist="ruvector-lake",
        names=(
            "RuLake",
            "RuLakeBuilder",
            "LocalBackend",
            "FsBackend",
            "BackendAdapter",
            "Consistency",
            "RefreshResult",
            "Bundle",
            "LakeHit",
            "LakeSession",
            "CacheStats",
            "BackendStats",
            "Changes",
            "ParquetBackend",
            "PostgresBackend",
        ),
    ),
    "embed": _Component(
        module="ruvector_embed",
        dist="ruvector-embed",
        names=("Embedder", "ImageEmbedder", "resolve_model"),
    ),
    "a2a": _Component(
        module="ruvector_a2a",
        dist="ruvector-a2a",
        names=(
            "A2aClient",
            "A2aServer",
            "AgentCard",
            "AgentSkill",
            "AgentCapabilities",
            "AgentProvider",
            "AgentInterface",
            "SecurityScheme",
            "Task",
            "TaskStatus",
            "TaskState",
            "TaskUpdate",
            "TaskStream",
            "TaskStreamSync",
            "TaskContext",
            "Message",
            "Part",
            "Role",
            "Artifact",
            "ListTasksResult",
            "PushNotificationConfig",
            "CardVerification",
            "TaskPolicy",
            "Budget",
            "verify_card",
            "sign_card",
            "generate_private_key",
            "public_key_jwk",
            "agent_id_of",
            "canonical_json",
        ),
    ),
}

# Re-exported name -> key of the component in _COMPONENTS that provides it.
_LAZY_NAMES: dict[str, str] = {name: key for key, component in _COMPONENTS.items() for name in component.names}

# Names defined by this package itself, loaded on first use: name -> module
# (a module of this package that needs a component raises
# MissingComponentError naming the extra when it is missing).
_OWN_NAMES: dict[str, str] = {
    "Collection": "ruvector.collection",
    "CollectionStats": "ruvector.collection",
    "QueryHit": "ruvector.collection",
    "Record": "ruvector.collection",
    # ruvector 0.1.4's RabitqIndex was RaBitQ+ with rerank: kept under its name
    # (the SDK's 1-bit-only index is ruvector.rabitq.RabitqIndex).
    "RabitqIndex": "ruvector._compat",
}
# ruvector 0.1.4 names that ruvector 0.2 does not carry: using one raises a
# RuVectorError naming the replacement (ruvector._removed).
_REMOVED_NAMES = (
    "HnswIndex",
    "GraphDB",
    "GnnLayer",
    "AttentionReranker",
    "SonaEngine",
    "KVCache",
    "RvfStore",
    "kmeans",
)

#: ruvector 0.1.4's ``CollectionError``: every Collection error is a
#: :class:`RuVectorError`, so ``except ruvector.CollectionError`` catches them.
CollectionError = _errors.RuVectorError


def _import_component(key: str, requested: str) -> object:
    """Import component ``key`` and return its module.

    Raises :class:`MissingComponentError` naming ``requested`` if the
    component's own module is not installed. A ``ModuleNotFoundError`` for
    any other module (a dependency of an installed component) is re-raised
    unchanged, so a broken installation is not mistaken for a missing one.
    """
    component = _COMPONENTS[key]
    try:
        return _importlib.import_module(component.module)
    except ModuleNotFoundError as error:
        if error.name != component.module:
            raise
        raise MissingComponentError(f"{__name__}.{requested}", key, component.dist, component.module) from error


def _distribution_version(dist: str) -> str:
    """Return the installed version of ``dist``, or ``"0+unknown"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return _UNKNOWN_VERSION


def _is_importable(module: str) -> bool:
    """Tell whether top-level ``module`` can be imported, without importing it."""
    if module in _sys.modules:
        # A None entry in sys.modules blocks the import on purpose.
        return _sys.modules.get(module) is not None
    try:
        return _importlib_util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> dict[str, bool]:
    """Report which optional components are installed.

    Returns:
        A mapping from each component's extra name (``"rabitq"``, ...) to
        whether its module can be imported. Nothing is imported to find out.
    """
    return {key: _is_importable(c.module) for key, c in _COMPONENTS.items()}


def versions() -> dict[str, str]:
    """Report the versions of the installed RuVector distributions.

    Returns:
        A mapping from distribution name (``"ruvector"``,
        ``"ruvector-common"``, ``"ruvector-rabitq"``, ...) to its installed
        version. Distributions that are not installed are left out.
    """
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for dist in (_DIST_NAME, _COMMON_DIST_NAME, *(c.dist for c in _COMPONENTS.values())):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


if _typing.TYPE_CHECKING:
    # What static type checkers see: plain imports, no module __getattr__.
    # Keep this block in step with _COMPONENTS above.
    import ruvector_a2a as a2a
    import ruvector_embed as embed
    import ruvector_lake as lake
    import ruvector_rabitq as rabitq
    from ruvector._compat import RabitqIndex as RabitqIndex
    from ruvector.collection import Collection as Collection
    from ruvector.collection import CollectionStats as CollectionStats
    from ruvector.collection import QueryHit as QueryHit
    from ruvector.collection import Record as Record
    from ruvector_a2a import A2aClient as A2aClient
    from ruvector_a2a import A2aServer as A2aServer
    from ruvector_a2a import AgentCapabilities as AgentCapabilities
    from ruvector_a2a import AgentCard as AgentCard
    from ruvector_a2a import AgentInterface as AgentInterface
    from ruvector_a2a import AgentProvider as AgentProvider
    from ruvector_a2a import AgentSkill as AgentSkill
    from ruvector_a2a import Artifact as Artifact
    from ruvector_a2a import Budget as Budget
    from ruvector_a2a import CardVerification as CardVerification
    from ruvector_a2a import ListTasksResult as ListTasksResult
    from ruvector_a2a import Message as Message
    from ruvector_a2a import Part as Part
    from ruvector_a2a import PushNotificationConfig as PushNotificationConfig
    from ruvector_a2a import Role as Role
    from ruvector_a2a import SecurityScheme as SecurityScheme
    from ruvector_a2a import Task as Task
    from ruvector_a2a import TaskContext as TaskContext
    from ruvector_a2a import TaskPolicy as TaskPolicy
    from ruvector_a2a import TaskState as TaskState
    from ruvector_a2a import TaskStatus as TaskStatus
    from ruvector_a2a import TaskStream as TaskStream
    from ruvector_a2a import TaskStreamSync as TaskStreamSync
    from ruvector_a2a import TaskUpdate as TaskUpdate
    from ruvector_a2a import agent_id_of as agent_id_of
    from ruvector_a2a import canonical_json as canonical_json
    from ruvector_a2a import generate_private_key as generate_private_key
    from ruvector_a2a import public_key_jwk as public_key_jwk
    from ruvector_a2a import sign_card as sign_card
    from ruvector_a2a import verify_card as verify_card
    from ruvector_embed import Embedder as Embedder
    from ruvector_embed import ImageEmbedder as ImageEmbedder
    from ruvector_embed import resolve_model as resolve_model
    from ruvector_lake import BackendAdapter as BackendAdapter
    from ruvector_lake import BackendStats as BackendStats
    from ruvector_lake import Bundle as Bundle
    from ruvector_lake import CacheStats as CacheStats
    from ruvector_lake import Changes as Changes
    from ruvector_lake import Consistency as Consistency
    from ruvector_lake import FsBackend as FsBackend
    from ruvector_lake import LakeHit as LakeHit
    from ruvector_lake import LakeSession as LakeSession
    from ruvector_lake import LocalBackend as LocalBackend
    from ruvector_lake import ParquetBackend as ParquetBackend
    from ruvector_lake import PostgresBackend as PostgresBackend
    from ruvector_lake import RefreshResult as RefreshResult
    from ruvector_lake import RuLake as RuLake
    from ruvector_lake import RuLakeBuilder as RuLakeBuilder
    from ruvector_rabitq import AnyIndex as AnyIndex
    from ruvector_rabitq import FlatF32Index as FlatF32Index
    from ruvector_rabitq import IvfRabitqIndex as IvfRabitqIndex
    from ruvector_rabitq import RabitqAsymIndex as RabitqAsymIndex
    from ruvector_rabitq import RabitqPlusIndex as RabitqPlusIndex
    from ruvector_rabitq import Recommendation as Recommendation
    from ruvector_rabitq import SearchHit as SearchHit
    from ruvector_rabitq import cpu_features as cpu_features
    from ruvector_rabitq import recommend as recommend

    __version__: str
    """The installed version of the ``ruvector`` distribution."""

    # Declares the module alias as public for type checkers (an
    # ``import a as b`` is otherwise private). Not done at run time, where
    # ``from ruvector import *`` must not import components.
    __all__ += ["rabitq", "lake", "embed", "a2a"]
else:
    # What runs: names of components resolve lazily on first use.

    def __getattr__(name: str) -> object:
        """Resolve component names on first use (PEP 562).

        The value is cached in the module namespace, so this runs once per
        name.
        """
        if name in _OWN_NAMES:
            value = getattr(_importlib.import_module(_OWN_NAMES[name]), name)
        elif name in _REMOVED_NAMES:
            from ruvector._removed import placeholder

            value = placeholder(name)
        elif name in _LAZY_NAMES:
            key = _LAZY_NAMES[name]
            module = _import_component(key, name)
            try:
                value = getattr(module, name)
            except AttributeError:
                dist = _COMPONENTS[key].dist
                raise AttributeError(
                    f"module {__name__!r} has no attribute {name!r}: the installed "
                    f"{dist} does not provide it; upgrade it with: "
                    f"pip install -U {dist}"
                ) from None
        elif name in _COMPONENTS:
            value = _import_component(name, name)
        elif name == "__version__":
            value = _distribution_version(_DIST_NAME)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """List the module's names, including components not yet imported."""
        return sorted({*globals(), *_LAZY_NAMES, *_OWN_NAMES, *_COMPONENTS, "__version__"})
