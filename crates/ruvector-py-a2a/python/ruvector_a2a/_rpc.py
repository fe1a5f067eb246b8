"""JSON-RPC 2.0 framing of the client: request bodies, answer checks,
the peer's errors as :class:`A2aError`."""

from __future__ import annotations

import itertools
import json
from typing import Any, Dict, Mapping, Optional, Tuple, cast

from ruvector_common.errors import A2aError, InvalidArgument, TransportError

JsonDict = Dict[str, Any]
_ids = itertools.count(1)


def as_map(x: Any) -> Optional[Mapping[str, Any]]:
    """``x`` as a JSON object, or None."""
    return cast(Mapping[str, Any], x) if isinstance(x, Mapping) else None


def rpc_error(err: Any) -> A2aError:
    """The peer's JSON-RPC error as :class:`A2aError` with ``.code`` and ``.data``."""
    m: Mapping[str, Any] = as_map(err) or {}
    code, msg = m.get("code"), m.get("message")
    e = A2aError(f"the peer answered JSON-RPC error {code}: {msg}")
    e.code = code  # type: ignore[attr-defined]
    e.data = m.get("data")  # type: ignore[attr-defined]
    return e


#: Methods whose result is null: some servers (the a2a-sdk's 0.3 layer) then
#: leave ``result`` out of the answer altogether.
_NULL_RESULT = frozenset({"DeleteTaskPushNotificationConfig"})


def unwrap(rid: int, raw: Any, method: str = "") -> Any:
    """The ``result`` of the answer to request ``rid``; the peer's error as :class:`A2aError`."""
    body = as_map(raw)
    if body is None:
        raise TransportError("the peer's JSON-RPC answer is not an object")
    if "error" in body and body["error"] is not None:
        raise rpc_error(body["error"])
    if body.get("id") != rid:
        raise TransportError(f"the peer answered JSON-RPC id {body.get('id')!r} to request id {rid}")
    if "result" not in body:
        if method in _NULL_RESULT:
            return None
        raise TransportError("the peer's JSON-RPC answer has neither result nor error")
    return body["result"]


def request_body(method: str, params: JsonDict) -> Tuple[int, bytes]:
    """A new request id and the UTF-8 JSON-RPC request."""
    rid = next(_ids)
    try:
        body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}, ensure_ascii=False).encode(
            "utf-8"
        )
    except UnicodeEncodeError as e:
        # Arguments are checked on the way in; this catches what is nested
        # deeper (a Part's data, metadata values).
        raise InvalidArgument(
            f"{method}: the request holds text that is not valid Unicode (a lone surrogate "
            f"{e.object[e.start : e.end]!r}); JSON text must be UTF-8"
        ) from None
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"{method}: the request cannot be encoded as JSON: {e}") from None
    return rid, body
