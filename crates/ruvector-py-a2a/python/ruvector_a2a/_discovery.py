"""Discovery: the agent card's URLs, its verification, and the endpoint and
dialect a card offers; the client's HTTP settings."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple, cast
from urllib.parse import urljoin, urlsplit

from ruvector_common.errors import A2aError, InvalidArgument, TransportError

from . import (
    _native,  # pyright: ignore[reportPrivateUsage]
    _rvagent,
)
from ._types import AgentCard, CardVerification

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
#: Seconds a stream may wait between two events (``stream_idle_timeout``).
DEFAULT_STREAM_IDLE_TIMEOUT = 300.0
CARD_PATH = "/.well-known/agent-card.json"
LEGACY_CARD_PATH = "/.well-known/agent.json"


def card_urls(url: str, card_path: Optional[str]) -> List[str]:
    """The URLs to fetch the card from, in order."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"url must be an http(s) URL, got {url!r}")
    if card_path is not None:
        return [urljoin(url, card_path)]
    if parts.path.endswith(".json"):
        return [url]
    base = url if url.endswith("/") else url + "/"
    return [urljoin(base, CARD_PATH.lstrip("/")), urljoin(base, LEGACY_CARD_PATH.lstrip("/"))]


class Config:
    """The HTTP settings of one client (its native transport) and its default
    stream deadline."""

    def __init__(
        self,
        timeout: float,
        headers: Mapping[str, str],
        bearer_token: Optional[str],
        api_key: Optional[str],
        api_key_header: str,
        max_response_bytes: int,
        max_event_bytes: int,
        stream_idle_timeout: float,
        stream_timeout: Optional[float] = None,
    ) -> None:
        if stream_timeout is not None and not (0 < float(stream_timeout) <= 604_800):
            raise InvalidArgument(f"stream_timeout must be a number of seconds in (0, 604800], got {stream_timeout}")
        #: Default total deadline of a stream (seconds), None for none.
        self.stream_timeout = None if stream_timeout is None else float(stream_timeout)
        h = dict(headers)
        if bearer_token is not None:
            h["Authorization"] = f"Bearer {bearer_token}"
        if api_key is not None:
            h[api_key_header] = api_key
        self.transport = _native.HttpTransport(
            headers=list(h.items()),
            timeout=float(timeout),
            max_response_bytes=int(max_response_bytes),
            max_event_bytes=int(max_event_bytes),
            stream_idle_timeout=float(stream_idle_timeout),
            user_agent=f"ruvector-a2a/{_native.__version__}",
        )


def verify_raw_card(raw: Any, trusted_keys: Any, expected_agent_id: Optional[str], allow_unsigned: bool) -> AgentCard:
    """The served card JSON, verified (``CardSignatureInvalid``) and typed."""
    if not isinstance(raw, dict):
        raise TransportError("the agent card is not a JSON object")
    info = _native.verify_card(
        cast(Dict[str, Any], raw),
        trusted_keys=trusted_keys,
        expected_agent_id=expected_agent_id,
        allow_unsigned=allow_unsigned,
    )
    # Only what the signature covers: unsigned extras are already dropped.
    verified = info.pop("card")
    return AgentCard.from_wire(verified, CardVerification(**info))


def endpoint_of(card: AgentCard, card_url: str, protocol: str) -> Tuple[str, str]:
    """The JSON-RPC URL and dialect (``"1.0"``, ``"0.3"`` or ``"rvagent"``) to use with this card."""
    orders = {
        "auto": ("1.0", "0.3", "rvagent"),
        "1.0": ("1.0",),
        "0.3": ("0.3",),
        "rvagent": ("rvagent",),
    }
    if protocol not in orders:
        raise InvalidArgument(f"protocol must be one of {sorted(orders)}, got {protocol!r}")
    prefixes_of = {"1.0": ("1.0", "1"), "0.3": ("0.3", "0.2"), "rvagent": (_rvagent.CARD_VERSION,)}
    for version in orders[protocol]:
        for prefix in prefixes_of[version]:
            iface = card.interface(prefix)
            if iface is not None:
                return urljoin(card_url, iface.url), version
    versions = sorted({i.protocol_version for i in card.supported_interfaces})
    raise A2aError(
        f"the agent at {card_url} offers no JSON-RPC interface for protocol {protocol} (it offers {versions})"
    )
