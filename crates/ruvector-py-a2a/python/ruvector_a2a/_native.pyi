"""Type stubs of the compiled module ``ruvector_a2a._native`` (the wire layer)."""

from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union, final

__all__ = [
    "__version__",
    "_error_classes",
    "cpu_features",
    "runtime_info",
    "HttpTransport",
    "EventStream",
    "ServerCore",
    "verify_card",
    "sign_card",
    "generate_private_key",
    "public_key_jwk",
    "agent_id_of",
    "canonical_json",
    "compat03_methods",
]

__version__: str
#: Names of the ``ruvector_common.errors`` classes this module raises
#: (checked against ``ruvector_common`` at import).
_error_classes: List[str]

def cpu_features() -> Dict[str, Union[str, bool]]: ...
def runtime_info() -> Dict[str, Union[str, bool, int]]: ...

@final
class HttpTransport:
    """HTTP client settings of one A2aClient (no retries, size caps, deadlines)."""

    def __new__(
        cls,
        *,
        headers: Sequence[Tuple[str, str]],
        timeout: float,
        max_response_bytes: int,
        max_event_bytes: int,
        stream_idle_timeout: float,
        user_agent: str,
    ) -> HttpTransport: ...
    def request(
        self, method: str, url: str, body: Optional[bytes] = None, headers: Sequence[Tuple[str, str]] = ...
    ) -> Awaitable[Tuple[int, Any]]: ...
    def request_sync(
        self, method: str, url: str, body: Optional[bytes] = None, headers: Sequence[Tuple[str, str]] = ...
    ) -> Tuple[int, Any]: ...
    def open_stream(
        self,
        url: str,
        body: Optional[bytes],
        headers: Sequence[Tuple[str, str]] = ...,
        stream_timeout: Optional[float] = None,
    ) -> Awaitable[EventStream]:
        """POSTs ``body`` (GETs without one) and opens its SSE answer. With
        ``stream_timeout`` (seconds) the whole stream, opening included, must
        end within it, else ``TransportError`` naming ``stream_timeout``;
        independently each event must come within ``stream_idle_timeout``."""
    def open_stream_sync(
        self,
        url: str,
        body: Optional[bytes],
        headers: Sequence[Tuple[str, str]] = ...,
        stream_timeout: Optional[float] = None,
    ) -> EventStream:
        """Synchronous :meth:`open_stream`."""

@final
class EventStream:
    """An open SSE response; each event's data parsed as JSON."""

    def next(self) -> Awaitable[Optional[Any]]: ...
    def next_sync(self) -> Optional[Any]: ...
    def ready(self) -> List[Any]: ...
    def close(self) -> None: ...
    @property
    def open(self) -> bool: ...

@final
class ServerCore:
    """The native half of A2aServer."""

    def __new__(
        cls,
        card: Mapping[str, Any],
        *,
        max_body_bytes: int,
        max_event_bytes: int,
        max_tasks: int,
        max_task_bytes: int,
        max_streams: int,
        max_connections: int,
        header_read_timeout: float,
        body_read_timeout: float,
        keep_alive_timeout: float,
        auth: Optional[Sequence[Sequence[Tuple[str, str, str]]]] = None,
        private_key: Optional[bytes] = None,
        kid: Optional[str] = None,
        push_notifications: bool = False,
        allow_private_webhooks: bool = False,
    ) -> ServerCore:
        """``auth``: the card's security as alternatives of ``(scheme name,
        source, parameter)``, source one of ``bearer``, ``basic``, ``header``,
        ``query``, ``cookie``; every JSON-RPC request must satisfy one
        alternative (see ``start``'s ``check_credential``). Connections:
        at most ``max_connections`` (past it the connection waiting longest
        without a request is closed, or, all being busy, the new one gets
        503); a request head within ``header_read_timeout`` seconds, its body
        within ``body_read_timeout`` (else 408), idle kept-alive connections
        closed after ``keep_alive_timeout``."""
    def start(
        self,
        host: str,
        port: int,
        loop_: Any,
        dispatch: Callable[[str, Dict[str, Any], Any, Optional[str]], None],
        on_cancel: Callable[[str], None],
        check_credential: Optional[Callable[[str, str], Tuple[int, Any]]] = None,
    ) -> Tuple[str, int]:
        """Binds and serves; ``check_credential(scheme, credential)`` answers
        ``(200, principal)`` or the refusal status (401, 403, 503); it is
        required when ``auth`` was given."""
    def stop(self, timeout: float = 5.0) -> None: ...
    @property
    def card(self) -> Any: ...
    def update_status(self, task_id: str, state: str, message: Optional[Mapping[str, Any]] = None) -> bool: ...
    def add_artifact(
        self, task_id: str, artifact: Mapping[str, Any], append: bool = False, last_chunk: bool = False
    ) -> bool: ...
    def get_task(self, task_id: str) -> Optional[Dict[str, Any]]: ...
    def stats(self) -> Tuple[int, int]: ...

def verify_card(
    card: Mapping[str, Any],
    *,
    trusted_keys: Optional[Any] = None,
    expected_agent_id: Optional[str] = None,
    allow_unsigned: bool = False,
) -> Dict[str, Any]:
    """Verifies a card's signature; ``{"scheme", "agent_id", "kid", "alg"}`` or CardSignatureInvalid."""

def sign_card(card: Mapping[str, Any], private_key: bytes, kid: Optional[str] = None) -> Dict[str, Any]:
    """A copy of ``card`` with an EdDSA JWS signature appended."""

def generate_private_key() -> bytes:
    """A new random Ed25519 private key (32-byte seed)."""

def public_key_jwk(private_key: bytes, kid: Optional[str] = None) -> Dict[str, str]:
    """The public JWK of an Ed25519 private key."""

def agent_id_of(key: Union[Mapping[str, Any], bytes, str]) -> str:
    """hex SHAKE-256 (32 bytes) of a public key (JWK, raw bytes or hex)."""

def canonical_json(value: Any) -> str:
    """RFC 8785 canonical JSON."""

def compat03_methods() -> List[Tuple[str, str]]:
    """The A2A 0.3 method table, ``[(1.0 name, 0.3 name)]`` (the one copy, in Rust)."""
