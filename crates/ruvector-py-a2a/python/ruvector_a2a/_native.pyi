"""Type stubs of the compiled module ``ruvector_a2a._native`` (the wire layer)."""

from typing import Any, Awaitable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

__version__: str

def cpu_features() -> Dict[str, Union[str, bool]]: ...
def runtime_info() -> Dict[str, Union[str, bool, int]]: ...

class HttpTransport:
    """HTTP client settings of one A2aClient (no retries, size caps, deadlines)."""

    def __init__(
        self,
        *,
        headers: Sequence[Tuple[str, str]],
        timeout: float,
        max_response_bytes: int,
        max_event_bytes: int,
        stream_idle_timeout: float,
        user_agent: str,
    ) -> None: ...
    def request(
        self, method: str, url: str, body: Optional[bytes] = None, headers: Sequence[Tuple[str, str]] = ...
    ) -> Awaitable[Tuple[int, Any]]: ...
    def request_sync(
        self, method: str, url: str, body: Optional[bytes] = None, headers: Sequence[Tuple[str, str]] = ...
    ) -> Tuple[int, Any]: ...
    def open_stream(
        self, url: str, body: Optional[bytes], headers: Sequence[Tuple[str, str]] = ...
    ) -> Awaitable[EventStream]: ...
    def open_stream_sync(
        self, url: str, body: Optional[bytes], headers: Sequence[Tuple[str, str]] = ...
    ) -> EventStream: ...

class EventStream:
    """An open SSE response; each event's data parsed as JSON."""

    def next(self) -> Awaitable[Optional[Any]]: ...
    def next_sync(self) -> Optional[Any]: ...
    def ready(self) -> List[Any]: ...
    def close(self) -> None: ...
    @property
    def open(self) -> bool: ...

class ServerCore:
    """The native half of A2aServer."""

    def __init__(
        self,
        card: Mapping[str, Any],
        *,
        max_body_bytes: int,
        max_event_bytes: int,
        max_tasks: int,
        max_task_bytes: int,
        max_streams: int,
        private_key: Optional[bytes] = None,
        kid: Optional[str] = None,
        push_notifications: bool = False,
        allow_private_webhooks: bool = False,
    ) -> None: ...
    def start(self, host: str, port: int, loop: Any, dispatch: Any, on_cancel: Any) -> Tuple[str, int]: ...
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
