"""The RuVector MCP server (``ruvector serve``; the ``ruvector[mcp]`` extra),
built on the official ``mcp`` SDK.

Tools: ``list_collections``, ``create_collection``, ``describe_collection``,
``add_documents``, ``get_documents``, ``query``, ``delete_documents``.
Collections are named (``[A-Za-z0-9_-]``, never paths) and live as
directories under the data directory (``--data-dir``,
``$RUVECTOR_MCP_DATA_DIR``, default ``~/.ruvector/mcp``); the server keeps
each one open (it is their one writer).

Security: ``read_only`` registers no tool that writes and opens collections
read-only. Over HTTP, a bearer token (from ``$RUVECTOR_MCP_TOKEN`` unless
another variable is named) is required on every request when set, checked
by the SDK's own token verifier in constant time; without one the server
only binds a loopback address. Per call: at most 1,000 documents, 64 KiB of
metadata JSON per document, ``k`` up to 1,000.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from ruvector_common.errors import InvalidArgument, MissingComponentError, NotFound, RuVectorError

try:
    from mcp.server.auth.provider import AccessToken, TokenVerifier
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
except ModuleNotFoundError as _missing:  # pragma: no cover - exercised by the extra-less install test
    if _missing.name is None or _missing.name.split(".")[0] not in ("mcp", "pydantic"):
        raise
    raise MissingComponentError("ruvector serve", "mcp", "mcp", "mcp") from _missing

if TYPE_CHECKING:
    from ruvector.collection import Collection

__all__ = ["build_server", "serve", "UnsafeBind"]

_Tool = TypeVar("_Tool", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DOCS_PER_CALL = 1_000
MAX_METADATA_BYTES = 65_536
MAX_K = 1_000
_ISSUER = "http://127.0.0.1/"

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)
_DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)


class UnsafeBind(RuVectorError):
    """HTTP on a non-loopback address without a token is refused."""


class _StaticToken(TokenVerifier):
    """One shared secret, compared in constant time."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def verify_token(self, token: str) -> Optional[AccessToken]:
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return None
        return AccessToken(token=token, client_id="ruvector", scopes=["read", "write"], resource=_ISSUER)


class _Collections:
    """The open collections of one server, by name."""

    def __init__(self, root: Path, read_only: bool) -> None:
        self.root = root
        self.read_only = read_only
        self.open: Dict[str, Collection] = {}
        self.lock = threading.Lock()

    def path(self, name: object) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgument(f"invalid collection name {name!r}: use 1-64 letters, digits, '-' or '_'")
        return self.root / name

    def get(self, name: str) -> Collection:
        from ruvector.collection import Collection

        path = self.path(name)
        with self.lock:
            if name not in self.open:
                if not (path / "ruvector.sqlite").is_file():
                    raise NotFound(f"no collection {name!r} (create it with create_collection)", name)
                self.open[name] = Collection.open(path, create=False, read_only=self.read_only)
            return self.open[name]

    def create(self, name: str, **options: Any) -> Collection:
        from ruvector.collection import Collection

        path = self.path(name)
        with self.lock:
            if (path / "ruvector.sqlite").is_file():
                raise InvalidArgument(f"collection {name!r} already exists")
            self.root.mkdir(parents=True, exist_ok=True)
            coll = Collection.open(path, **options)
            self.open[name] = coll
            return coll

    def names(self) -> List[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "ruvector.sqlite").is_file())

    def close(self) -> None:
        with self.lock:
            for coll in self.open.values():
                coll.close()
            self.open.clear()


def _check_docs(n: int, metadata: Optional[List[Optional[Dict[str, Any]]]]) -> None:
    import json

    if n > MAX_DOCS_PER_CALL:
        raise InvalidArgument(f"at most {MAX_DOCS_PER_CALL} documents per call, got {n}")
    for i, meta in enumerate(metadata or []):
        size = len(json.dumps(meta, default=str).encode())
        if size > MAX_METADATA_BYTES:
            raise InvalidArgument(f"metadata[{i}] is {size} bytes of JSON; at most {MAX_METADATA_BYTES}")


def _hits(hits: List[Any]) -> List[Dict[str, Any]]:
    return [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits]


def build_server(
    data_dir: Union[str, os.PathLike[str], None] = None,
    *,
    read_only: bool = False,
    token: Optional[str] = None,
) -> MCPServer:
    """The MCP server over the collections in ``data_dir`` (``token``: the
    bearer token HTTP requests must carry)."""
    return _build(data_dir, read_only, token)[0]


def _build(
    data_dir: Union[str, os.PathLike[str], None], read_only: bool, token: Optional[str]
) -> Tuple[MCPServer, _Collections]:
    """:func:`build_server` and the open collections it serves (closed by :func:`serve`)."""
    root = Path(
        os.fspath(data_dir) if data_dir is not None else os.environ.get("RUVECTOR_MCP_DATA_DIR", "~/.ruvector/mcp")
    ).expanduser()
    collections = _Collections(root, read_only)
    verifier = auth = None
    if token:
        verifier = _StaticToken(token)
        auth = AuthSettings(issuer_url=_ISSUER, resource_server_url=_ISSUER)  # type: ignore[arg-type]
    server = MCPServer(
        name="ruvector",
        title="RuVector collections",
        instructions=(
            "Semantic search over named document collections. Create a collection, add texts with "
            "metadata, query by meaning with optional where filters ({'lang': 'en'}, {'year': {'$gte': 2020}}, "
            "$in, $ne, $and, $or), get and delete documents."
        ),
        token_verifier=verifier,
        auth=auth,
    )

    def tool(annotations: ToolAnnotations, writes: bool = False) -> Callable[[_Tool], _Tool]:
        """Registers a tool (a write tool only when not read-only)."""

        def register(fn: _Tool) -> _Tool:
            if writes and read_only:
                return fn

            import functools

            @functools.wraps(fn)
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except (RuVectorError, ValueError, LookupError) as error:
                    # Our messages say what to correct; the SDK would hide them otherwise.
                    raise ToolError(str(error)) from error

            server.tool(name=fn.__name__, description=fn.__doc__, annotations=annotations)(wrapped)
            return fn

        return register

    @tool(_READ)
    def list_collections() -> Dict[str, Any]:
        """List the collections and their document counts."""
        out: List[Dict[str, Any]] = []
        for name in collections.names():
            out.append({"name": name, "count": collections.get(name).count()})
        return {"collections": out, "read_only": read_only}

    @tool(_READ)
    def describe_collection(collection: str) -> Dict[str, Any]:
        """Counts and settings of a collection: documents, dimension, metric, index, embedder."""
        info = collections.get(collection).describe()
        info.pop("path", None)
        return info

    @tool(_WRITE, writes=True)
    def create_collection(
        collection: str, metric: str = "cosine", embedder: Optional[str] = "all-MiniLM-L6-v2", dim: Optional[int] = None
    ) -> Dict[str, Any]:
        """Create an empty collection; texts are embedded with `embedder` (null: vectors only)."""
        coll = collections.create(collection, metric=metric, embedder=embedder, dim=dim)
        info = coll.describe()
        info.pop("path", None)
        return info

    @tool(_WRITE, writes=True)
    def add_documents(
        collection: str,
        texts: Optional[List[Optional[str]]] = None,
        ids: Optional[List[Union[str, int]]] = None,
        metadata: Optional[List[Optional[Dict[str, Any]]]] = None,
        vectors: Optional[List[List[float]]] = None,
        upsert: bool = False,
    ) -> Dict[str, Any]:
        """Add documents (texts are embedded unless vectors are given); upsert=true replaces existing ids."""
        n = len(texts) if texts is not None else len(vectors or [])
        _check_docs(n, metadata)
        coll = collections.get(collection)
        method = coll.upsert if upsert else coll.add
        added = method(texts, ids=ids, metadata=metadata, vectors=vectors)
        return {"ids": added, "count": coll.count()}

    @tool(_READ)
    def query(
        collection: str,
        text: Optional[str] = None,
        vector: Optional[List[float]] = None,
        k: int = 5,
        where: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """The k documents nearest to a text (or a vector), optionally only those matching `where`."""
        if (text is None) == (vector is None):
            raise InvalidArgument("give exactly one of text or vector")
        if not 1 <= k <= MAX_K:
            raise InvalidArgument(f"k must be in 1..{MAX_K}, got {k}")
        coll = collections.get(collection)
        hits = coll.query(text, k=k, where=where) if text is not None else coll.query(vector or [], k=k, where=where)
        return {"hits": _hits(hits)}

    @tool(_READ)
    def get_documents(
        collection: str,
        ids: Optional[List[Union[str, int]]] = None,
        where: Optional[Dict[str, Any]] = None,
        limit: int = 20,
        offset: int = 0,
    ) -> Dict[str, Any]:
        """Stored documents by ids, by where, or all (paged)."""
        if not 0 <= limit <= MAX_DOCS_PER_CALL:
            raise InvalidArgument(f"limit must be in 0..{MAX_DOCS_PER_CALL}, got {limit}")
        records = collections.get(collection).get(ids, where=where, limit=limit, offset=offset)
        return {"documents": [{"id": r.id, "text": r.text, "metadata": r.metadata} for r in records]}

    @tool(_DELETE, writes=True)
    def delete_documents(
        collection: str, ids: Optional[List[Union[str, int]]] = None, where: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]:
        """Delete documents by ids and/or where ({} deletes every document)."""
        coll = collections.get(collection)
        missing = [] if ids is None else [i for i in dict.fromkeys(ids) if i not in coll]
        deleted = coll.delete(ids, where=where)
        return {"deleted": deleted, "count": coll.count(), "missing": missing}

    return server, collections


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    data_dir: Union[str, os.PathLike[str], None] = None,
    *,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = 8420,
    read_only: bool = False,
    token_env: str = "RUVECTOR_MCP_TOKEN",
) -> None:
    """Runs the server on stdio, or on streamable HTTP at ``http://host:port/mcp``."""
    token = (os.environ.get(token_env) or "").strip() or None
    if http and token is None and not _is_loopback(host):
        raise UnsafeBind(f"refusing to serve HTTP on {host!r} without a token: set {token_env}, or bind 127.0.0.1")
    server, collections = _build(data_dir, read_only, token if http else None)
    try:
        if http:
            server.run(transport="streamable-http", host=host, port=port)
        else:
            server.run(transport="stdio")
    finally:
        collections.close()
