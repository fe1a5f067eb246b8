"""Typed A2A objects and their A2A 1.0 JSON form (``to_wire`` / ``from_wire``).

Field names follow the A2A 1.0 specification in snake_case; the wire form is
camelCase JSON with ``TASK_STATE_*`` / ``ROLE_*`` enum names. Unknown wire
fields are ignored; a missing required field raises :class:`TransportError`
(it came from a peer) naming the field.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union, cast

from ruvector_common.errors import InvalidArgument, TransportError

JsonDict = Dict[str, Any]

__all__ = [
    "AgentCapabilities",
    "AgentCard",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "Artifact",
    "CardVerification",
    "ListTasksResult",
    "Message",
    "Part",
    "PushNotificationConfig",
    "Role",
    "SecurityScheme",
    "Task",
    "TaskState",
    "TaskStatus",
    "TaskUpdate",
]


def _empty_list() -> List[Any]:
    return []


def _empty_dict() -> Dict[str, Any]:
    return {}


def _check_text(value: Any, name: str) -> None:
    """Raises :class:`InvalidArgument` naming ``name`` if ``value`` is a str
    holding a lone surrogate (``"\\ud800"``): no UTF-8 text, so no JSON or
    HTTP message, can carry it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidArgument(
                f"{name} is not valid Unicode text: it holds a lone surrogate "
                f"{value[e.start : e.end]!r} at index {e.start}"
            ) from None


def _check_json(value: Any, name: str, depth: int = 0) -> None:
    """:func:`_check_text` over the strings (keys included) of a JSON-like value."""
    if depth > 128:
        raise InvalidArgument(f"{name}: JSON nesting deeper than 128")
    if isinstance(value, str):
        _check_text(value, name)
    elif isinstance(value, Mapping):
        for k, v in cast(Mapping[Any, Any], value).items():  # type: ignore[redundant-cast]
            _check_text(k, f"{name} (a key)")
            _check_json(v, f"{name}[{k!r}]" if depth < 4 else name, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in cast(Sequence[Any], value):
            _check_json(v, name, depth + 1)


def _new_id() -> str:
    return str(uuid.uuid4())


def _m(x: Any) -> Optional[Mapping[str, Any]]:
    """``x`` as a JSON object, or None."""
    return cast(Mapping[str, Any], x) if isinstance(x, Mapping) else None


def _obj(d: Any, what: str) -> Mapping[str, Any]:
    m = _m(d)
    if m is None:
        raise TransportError(f"{what}: expected a JSON object from the peer, got {type(d).__name__}")
    return m


def _req_str(d: Mapping[str, Any], key: str, what: str) -> str:
    v = d.get(key)
    if not isinstance(v, str):
        raise TransportError(f"{what}: field {key!r} is missing or not a string")
    return v


def _opt_str(d: Mapping[str, Any], key: str) -> Optional[str]:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _opt_dict(d: Mapping[str, Any], key: str) -> Optional[JsonDict]:
    v = _m(d.get(key))
    return dict(v) if v is not None else None


def _list(d: Mapping[str, Any], key: str) -> List[Any]:
    v = d.get(key)
    return cast(List[Any], v) if isinstance(v, list) else []  # type: ignore[redundant-cast]


def _str_list(d: Mapping[str, Any], key: str) -> List[str]:
    return [x for x in _list(d, key) if isinstance(x, str)]


def _maps(d: Mapping[str, Any], key: str) -> List[Mapping[str, Any]]:
    """The JSON objects of the list field ``key``."""
    return [m for m in (_m(x) for x in _list(d, key)) if m is not None]


class TaskState(str, Enum):
    """Lifecycle state of a task (A2A ``TaskState``)."""

    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input-required"
    AUTH_REQUIRED = "auth-required"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Completed, canceled, failed or rejected: the task will not change again."""
        return self in _TERMINAL

    @property
    def is_interrupted(self) -> bool:
        """Waiting for the client (input or auth required)."""
        return self in (TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED)

    @property
    def is_final(self) -> bool:
        """Terminal or interrupted: a stream of updates ends here."""
        return self.is_terminal or self.is_interrupted

    def to_wire(self) -> str:
        """``TASK_STATE_COMPLETED`` etc."""
        return "TASK_STATE_" + self.value.upper().replace("-", "_")

    @classmethod
    def from_wire(cls, s: Any) -> TaskState:
        """Accepts the 1.0 (``TASK_STATE_WORKING``) and 0.3 (``working``) spellings."""
        if not isinstance(s, str):
            return cls.UNKNOWN
        t = s.strip()
        if t.upper().startswith("TASK_STATE_"):
            t = t[len("TASK_STATE_") :]
        t = t.lower().replace("_", "-")
        if t == "cancelled":
            t = "canceled"
        try:
            return cls(t)
        except ValueError:
            return cls.UNKNOWN


_TERMINAL = frozenset({TaskState.COMPLETED, TaskState.CANCELED, TaskState.FAILED, TaskState.REJECTED})


class Role(str, Enum):
    """Sender of a message."""

    USER = "user"
    AGENT = "agent"

    def to_wire(self) -> str:
        return "ROLE_" + self.value.upper()

    @classmethod
    def from_wire(cls, s: Any) -> Role:
        t = str(s).upper()
        return cls.AGENT if t in ("ROLE_AGENT", "AGENT") else cls.USER


@dataclass
class Part:
    """One piece of content: exactly one of ``text``, ``data`` (any JSON),
    ``raw`` (bytes) or ``url`` is set."""

    text: Optional[str] = None
    data: Any = None
    raw: Optional[bytes] = None
    url: Optional[str] = None
    filename: Optional[str] = None
    media_type: Optional[str] = None
    metadata: Optional[JsonDict] = None

    def __post_init__(self) -> None:
        n = sum(x is not None for x in (self.text, self.data, self.raw, self.url))
        if n != 1:
            raise InvalidArgument(f"a Part holds exactly one of text, data, raw, url; got {n}")
        for name in ("text", "url", "filename", "media_type"):
            _check_text(getattr(self, name), f"Part.{name}")
        _check_json(self.data, "Part.data")
        _check_json(self.metadata, "Part.metadata")

    @property
    def kind(self) -> str:
        """``"text"``, ``"data"``, ``"raw"`` or ``"url"``."""
        if self.text is not None:
            return "text"
        if self.raw is not None:
            return "raw"
        if self.url is not None:
            return "url"
        return "data"

    def to_wire(self) -> JsonDict:
        d: JsonDict = {}
        if self.text is not None:
            d["text"] = self.text
        elif self.raw is not None:
            d["raw"] = base64.b64encode(self.raw).decode("ascii")
        elif self.url is not None:
            d["url"] = self.url
        else:
            d["data"] = self.data
        if self.filename:
            d["filename"] = self.filename
        if self.media_type:
            d["mediaType"] = self.media_type
        if self.metadata:
            d["metadata"] = self.metadata
        return d

    @classmethod
    def from_wire(cls, d: Any) -> Part:
        m = _obj(d, "Part")
        common: JsonDict = dict(
            filename=_opt_str(m, "filename") or None,
            media_type=_opt_str(m, "mediaType") or None,
            metadata=_opt_dict(m, "metadata"),
        )
        if isinstance(m.get("text"), str):
            return cls(text=m["text"], **common)
        if isinstance(m.get("raw"), str):
            try:
                raw = base64.b64decode(m["raw"], validate=False)
            except ValueError as e:
                raise TransportError(f"Part.raw is not base64: {e}") from None
            return cls(raw=raw, **common)
        if isinstance(m.get("url"), str):
            return cls(url=m["url"], **common)
        if "data" in m and m["data"] is not None:
            return cls(data=m["data"], **common)
        raise TransportError(f"Part: none of text, raw, url, data in {sorted(m)}")


PartLike = Union[str, Part]


def _parts(content: Union[str, Part, Sequence[PartLike]]) -> List[Part]:
    if isinstance(content, (str, Part)):
        content = [content]
    out: List[Part] = []
    for p in cast(Sequence[object], content):
        if isinstance(p, str):
            out.append(Part(text=p))
        elif isinstance(p, Part):
            out.append(p)
        else:
            raise InvalidArgument(f"expected str or Part, got {type(p).__name__}")
    if not out:
        raise InvalidArgument("a message or artifact needs at least one part")
    return out


@dataclass
class Message:
    """A message between user and agent."""

    role: Role
    parts: List[Part]
    message_id: str = field(default_factory=_new_id)
    context_id: Optional[str] = None
    task_id: Optional[str] = None
    metadata: Optional[JsonDict] = None
    extensions: List[str] = field(default_factory=_empty_list)
    reference_task_ids: List[str] = field(default_factory=_empty_list)

    @classmethod
    def user(cls, content: Union[str, Part, Sequence[PartLike]], **kw: Any) -> Message:
        """A user message from text, a Part or a list of them."""
        return cls(role=Role.USER, parts=_parts(content), **kw)

    @classmethod
    def agent(cls, content: Union[str, Part, Sequence[PartLike]], **kw: Any) -> Message:
        """An agent message from text, a Part or a list of them."""
        return cls(role=Role.AGENT, parts=_parts(content), **kw)

    @property
    def text(self) -> str:
        """The text parts joined by newlines."""
        return "\n".join(p.text for p in self.parts if p.text is not None)

    def to_wire(self) -> JsonDict:
        d: JsonDict = {
            "messageId": self.message_id,
            "role": self.role.to_wire(),
            "parts": [p.to_wire() for p in self.parts],
        }
        if self.context_id:
            d["contextId"] = self.context_id
        if self.task_id:
            d["taskId"] = self.task_id
        if self.metadata:
            d["metadata"] = self.metadata
        if self.extensions:
            d["extensions"] = list(self.extensions)
        if self.reference_task_ids:
            d["referenceTaskIds"] = list(self.reference_task_ids)
        return d

    @classmethod
    def from_wire(cls, d: Any) -> Message:
        m = _obj(d, "Message")
        return cls(
            role=Role.from_wire(m.get("role")),
            parts=[Part.from_wire(p) for p in _list(m, "parts")],
            message_id=_opt_str(m, "messageId") or "",
            context_id=_opt_str(m, "contextId") or None,
            task_id=_opt_str(m, "taskId") or None,
            metadata=_opt_dict(m, "metadata"),
            extensions=_str_list(m, "extensions"),
            reference_task_ids=_str_list(m, "referenceTaskIds"),
        )


@dataclass
class TaskStatus:
    """Current state of a task, with an optional agent message."""

    state: TaskState
    message: Optional[Message] = None
    timestamp: Optional[str] = None

    def to_wire(self) -> JsonDict:
        d: JsonDict = {"state": self.state.to_wire()}
        if self.message is not None:
            d["message"] = self.message.to_wire()
        if self.timestamp:
            d["timestamp"] = self.timestamp
        return d

    @classmethod
    def from_wire(cls, d: Any) -> TaskStatus:
        m = _obj(d, "TaskStatus")
        msg = m.get("message")
        return cls(
            state=TaskState.from_wire(m.get("state")),
            message=Message.from_wire(msg) if isinstance(msg, Mapping) else None,
            timestamp=_opt_str(m, "timestamp"),
        )


@dataclass
class Artifact:
    """An output of a task."""

    parts: List[Part]
    artifact_id: str = field(default_factory=_new_id)
    name: Optional[str] = None
    description: Optional[str] = None
    metadata: Optional[JsonDict] = None
    extensions: List[str] = field(default_factory=_empty_list)

    @classmethod
    def of(cls, content: Union[str, Part, Sequence[PartLike]], **kw: Any) -> Artifact:
        """An artifact from text, a Part or a list of them."""
        return cls(parts=_parts(content), **kw)

    @property
    def text(self) -> str:
        """The text parts joined by newlines."""
        return "\n".join(p.text for p in self.parts if p.text is not None)

    def to_wire(self) -> JsonDict:
        d: JsonDict = {"artifactId": self.artifact_id, "parts": [p.to_wire() for p in self.parts]}
        if self.name:
            d["name"] = self.name
        if self.description:
            d["description"] = self.description
        if self.metadata:
            d["metadata"] = self.metadata
        if self.extensions:
            d["extensions"] = list(self.extensions)
        return d

    @classmethod
    def from_wire(cls, d: Any) -> Artifact:
        m = _obj(d, "Artifact")
        return cls(
            parts=[Part.from_wire(p) for p in _list(m, "parts")],
            artifact_id=_opt_str(m, "artifactId") or "",
            name=_opt_str(m, "name"),
            description=_opt_str(m, "description"),
            metadata=_opt_dict(m, "metadata"),
            extensions=_str_list(m, "extensions"),
        )


@dataclass
class Task:
    """A unit of work on an agent."""

    id: str
    context_id: str
    status: TaskStatus
    artifacts: List[Artifact] = field(default_factory=_empty_list)
    history: List[Message] = field(default_factory=_empty_list)
    metadata: Optional[JsonDict] = None

    @property
    def state(self) -> TaskState:
        """Shortcut for ``task.status.state``."""
        return self.status.state

    def to_wire(self) -> JsonDict:
        d: JsonDict = {"id": self.id, "contextId": self.context_id, "status": self.status.to_wire()}
        if self.artifacts:
            d["artifacts"] = [a.to_wire() for a in self.artifacts]
        if self.history:
            d["history"] = [h.to_wire() for h in self.history]
        if self.metadata:
            d["metadata"] = self.metadata
        return d

    @classmethod
    def from_wire(cls, d: Any) -> Task:
        m = _obj(d, "Task")
        return cls(
            id=_req_str(m, "id", "Task"),
            context_id=_opt_str(m, "contextId") or "",
            status=TaskStatus.from_wire(m.get("status") or {}),
            artifacts=[Artifact.from_wire(a) for a in _list(m, "artifacts")],
            history=[Message.from_wire(h) for h in _list(m, "history")],
            metadata=_opt_dict(m, "metadata"),
        )


@dataclass
class TaskUpdate:
    """One event of a task stream, discriminated by ``kind``:

    * ``"task"`` — a snapshot (``task``): the first event of a stream, and the
      full state again if this reader fell so far behind the agent that
      events were dropped for it (this SDK's server buffers 1,024 per task);
    * ``"status"`` — a status change (``status``);
    * ``"artifact"`` — a new or appended artifact (``artifact``, ``append``, ``last_chunk``);
    * ``"message"`` — a direct agent reply (``message``), which ends the stream.
    """

    kind: str
    task_id: Optional[str] = None
    context_id: Optional[str] = None
    task: Optional[Task] = None
    status: Optional[TaskStatus] = None
    artifact: Optional[Artifact] = None
    message: Optional[Message] = None
    append: bool = False
    last_chunk: bool = False
    metadata: Optional[JsonDict] = None

    @property
    def state(self) -> Optional[TaskState]:
        """The task state this update carries, if any."""
        if self.status is not None:
            return self.status.state
        if self.task is not None:
            return self.task.status.state
        return None

    @property
    def is_final(self) -> bool:
        """True when the stream ends after this update."""
        if self.kind == "message":
            return True
        s = self.state
        return s is not None and s.is_final

    @classmethod
    def from_wire(cls, d: Any) -> TaskUpdate:
        """From a 1.0 ``StreamResponse`` (``task`` | ``message`` | ``statusUpdate`` | ``artifactUpdate``)."""
        m = _obj(d, "StreamResponse")
        e = _m(m.get("statusUpdate"))
        if e is not None:
            return cls(
                kind="status",
                task_id=_opt_str(e, "taskId"),
                context_id=_opt_str(e, "contextId"),
                status=TaskStatus.from_wire(e.get("status") or {}),
                metadata=_opt_dict(e, "metadata"),
            )
        e = _m(m.get("artifactUpdate"))
        if e is not None:
            return cls(
                kind="artifact",
                task_id=_opt_str(e, "taskId"),
                context_id=_opt_str(e, "contextId"),
                artifact=Artifact.from_wire(e.get("artifact") or {}),
                append=bool(e.get("append")),
                last_chunk=bool(e.get("lastChunk")),
                metadata=_opt_dict(e, "metadata"),
            )
        if _m(m.get("task")) is not None:
            t = Task.from_wire(m["task"])
            return cls(kind="task", task_id=t.id, context_id=t.context_id, task=t)
        if _m(m.get("message")) is not None:
            msg = Message.from_wire(m["message"])
            return cls(kind="message", task_id=msg.task_id, context_id=msg.context_id, message=msg)
        raise TransportError(f"stream event: none of task, message, statusUpdate, artifactUpdate in {sorted(m)}")


@dataclass
class AgentProvider:
    """The organisation behind an agent."""

    organization: str
    url: Optional[str] = None


@dataclass
class AgentCapabilities:
    """Optional protocol features an agent supports."""

    streaming: bool = False
    push_notifications: bool = False
    extended_agent_card: bool = False
    extensions: List[JsonDict] = field(default_factory=_empty_list)


@dataclass
class AgentSkill:
    """Something the agent can do."""

    id: str
    name: str
    description: str = ""
    tags: List[str] = field(default_factory=_empty_list)
    examples: List[str] = field(default_factory=_empty_list)
    input_modes: List[str] = field(default_factory=_empty_list)
    output_modes: List[str] = field(default_factory=_empty_list)


@dataclass
class AgentInterface:
    """An endpoint of the agent: URL, protocol binding and version."""

    url: str
    protocol_binding: str = "JSONRPC"
    protocol_version: str = "1.0"
    tenant: Optional[str] = None


@dataclass
class SecurityScheme:
    """An authentication scheme of the card.

    ``type`` is ``"apiKey"``, ``"http"``, ``"oauth2"``, ``"openIdConnect"`` or
    ``"mutualTLS"``; ``details`` keeps the scheme's full JSON.
    """

    type: str
    description: Optional[str] = None
    name: Optional[str] = None
    location: Optional[str] = None
    scheme: Optional[str] = None
    bearer_format: Optional[str] = None
    details: JsonDict = field(default_factory=_empty_dict, compare=False)


_SCHEME_KEYS = {
    "apiKeySecurityScheme": "apiKey",
    "httpAuthSecurityScheme": "http",
    "oauth2SecurityScheme": "oauth2",
    "openIdConnectSecurityScheme": "openIdConnect",
    "mtlsSecurityScheme": "mutualTLS",
}


def _scheme_from_wire(d: Any) -> SecurityScheme:
    m = _obj(d, "SecurityScheme")
    for key, typ in _SCHEME_KEYS.items():
        if isinstance(m.get(key), Mapping):
            s = m[key]
            return SecurityScheme(
                type=typ,
                description=_opt_str(s, "description"),
                name=_opt_str(s, "name"),
                location=_opt_str(s, "location") or _opt_str(s, "in"),
                scheme=_opt_str(s, "scheme"),
                bearer_format=_opt_str(s, "bearerFormat"),
                details=dict(s),
            )
    # 0.3 style: {"type": "apiKey", ...}
    return SecurityScheme(
        type=str(m.get("type", "unknown")),
        description=_opt_str(m, "description"),
        name=_opt_str(m, "name"),
        location=_opt_str(m, "in"),
        scheme=_opt_str(m, "scheme"),
        bearer_format=_opt_str(m, "bearerFormat"),
        details=dict(m),
    )


def _scheme_to_wire(s: SecurityScheme) -> JsonDict:
    key = {v: k for k, v in _SCHEME_KEYS.items()}.get(s.type, "httpAuthSecurityScheme")
    body: JsonDict = dict(s.details)
    for k, v in (
        ("description", s.description),
        ("name", s.name),
        ("location", s.location),
        ("scheme", s.scheme),
        ("bearerFormat", s.bearer_format),
    ):
        if v:
            body[k] = v
    return {key: body}


@dataclass
class CardVerification:
    """How a card's signature was checked.

    ``scheme`` is ``"jws"`` (A2A), ``"rvagent"`` (rvAgent Ed25519) or
    ``"none"`` (unsigned, accepted only with ``allow_unsigned=True``);
    ``agent_id`` is hex SHAKE-256 of the signing key — pin it with
    ``expected_agent_id``.
    """

    scheme: str
    agent_id: Optional[str] = None
    kid: Optional[str] = None
    alg: Optional[str] = None


@dataclass
class AgentCard:
    """An agent's self-description (A2A ``AgentCard``)."""

    name: str
    description: str = ""
    version: str = "1.0.0"
    supported_interfaces: List[AgentInterface] = field(default_factory=_empty_list)
    provider: Optional[AgentProvider] = None
    capabilities: AgentCapabilities = field(default_factory=AgentCapabilities)
    skills: List[AgentSkill] = field(default_factory=_empty_list)
    default_input_modes: List[str] = field(default_factory=lambda: ["text/plain"])
    default_output_modes: List[str] = field(default_factory=lambda: ["text/plain"])
    security_schemes: Dict[str, SecurityScheme] = field(default_factory=_empty_dict)
    security_requirements: List[Dict[str, List[str]]] = field(default_factory=_empty_list)
    documentation_url: Optional[str] = None
    icon_url: Optional[str] = None
    signatures: List[JsonDict] = field(default_factory=_empty_list)
    verification: Optional[CardVerification] = None
    raw: JsonDict = field(default_factory=_empty_dict, repr=False, compare=False)

    @property
    def agent_id(self) -> Optional[str]:
        """Agent id of the key that signed the card (None if unsigned or not verified)."""
        return self.verification.agent_id if self.verification else None

    def interface(self, version: str = "1.0") -> Optional[AgentInterface]:
        """The first JSON-RPC interface of that protocol version (major.minor)."""
        for i in self.supported_interfaces:
            if i.protocol_binding.upper() == "JSONRPC" and i.protocol_version.startswith(version):
                return i
        return None

    def to_wire(self) -> JsonDict:
        """The 1.0 card JSON (defaults and empty fields left out, as signers expect)."""
        d: JsonDict = {"name": self.name, "description": self.description, "version": self.version}
        if self.supported_interfaces:
            ifs: List[JsonDict] = []
            for i in self.supported_interfaces:
                x: JsonDict = {
                    "url": i.url,
                    "protocolBinding": i.protocol_binding,
                    "protocolVersion": i.protocol_version,
                }
                if i.tenant:
                    x["tenant"] = i.tenant
                ifs.append(x)
            d["supportedInterfaces"] = ifs
        if self.provider is not None:
            p: JsonDict = {"organization": self.provider.organization}
            if self.provider.url:
                p["url"] = self.provider.url
            d["provider"] = p
        caps: JsonDict = {}
        if self.capabilities.streaming:
            caps["streaming"] = True
        if self.capabilities.push_notifications:
            caps["pushNotifications"] = True
        if self.capabilities.extended_agent_card:
            caps["extendedAgentCard"] = True
        if self.capabilities.extensions:
            caps["extensions"] = list(self.capabilities.extensions)
        d["capabilities"] = caps
        if self.default_input_modes:
            d["defaultInputModes"] = list(self.default_input_modes)
        if self.default_output_modes:
            d["defaultOutputModes"] = list(self.default_output_modes)
        skills: List[JsonDict] = []
        for s in self.skills:
            x = {"id": s.id, "name": s.name, "description": s.description, "tags": list(s.tags)}
            for k, v in (("examples", s.examples), ("inputModes", s.input_modes), ("outputModes", s.output_modes)):
                if v:
                    x[k] = list(v)
            skills.append(x)
        d["skills"] = skills
        if self.security_schemes:
            d["securitySchemes"] = {k: _scheme_to_wire(v) for k, v in self.security_schemes.items()}
        if self.security_requirements:
            d["securityRequirements"] = [
                {"schemes": {k: {"list": list(v)} for k, v in r.items()}} for r in self.security_requirements
            ]
        if self.documentation_url:
            d["documentationUrl"] = self.documentation_url
        if self.icon_url:
            d["iconUrl"] = self.icon_url
        if self.signatures:
            d["signatures"] = list(self.signatures)
        return d

    @classmethod
    def from_wire(cls, d: Any, verification: Optional[CardVerification] = None) -> AgentCard:
        """From card JSON (1.0; 0.3 and rvAgent cards map their ``url`` to an interface)."""
        m = _obj(d, "AgentCard")
        ifaces: List[AgentInterface] = []
        for i in _maps(m, "supportedInterfaces"):
            url = i.get("url")
            if isinstance(url, str):
                ifaces.append(
                    AgentInterface(
                        url=url,
                        protocol_binding=str(i.get("protocolBinding", "JSONRPC")),
                        protocol_version=str(i.get("protocolVersion", "1.0")),
                        tenant=_opt_str(i, "tenant"),
                    )
                )
        legacy_url = m.get("url")
        if not ifaces and isinstance(legacy_url, str):
            legacy = "0.3" if "protocolVersion" in m or "preferredTransport" in m else "0.1"
            ifaces.append(
                AgentInterface(
                    url=legacy_url,
                    protocol_binding=str(m.get("preferredTransport", "JSONRPC")),
                    protocol_version=str(m.get("protocolVersion", legacy)),
                )
            )
        prov = _m(m.get("provider"))
        caps: Mapping[str, Any] = _m(m.get("capabilities")) or {}
        skills = [
            AgentSkill(
                id=str(s.get("id", "")),
                name=str(s.get("name", "")),
                description=str(s.get("description", "") or ""),
                tags=_str_list(s, "tags"),
                examples=_str_list(s, "examples"),
                input_modes=_str_list(s, "inputModes"),
                output_modes=_str_list(s, "outputModes"),
            )
            for s in _maps(m, "skills")
        ]
        schemes: Dict[str, SecurityScheme] = {}
        for k, v in (_m(m.get("securitySchemes")) or {}).items():
            sv = _m(v)
            if sv is not None:
                schemes[str(k)] = _scheme_from_wire(sv)
        reqs: List[Dict[str, List[str]]] = []
        for r in _maps(m, "securityRequirements"):
            sch = _m(r.get("schemes"))
            if sch is not None:
                reqs.append({str(k): _str_list(_m(v) or {}, "list") for k, v in sch.items()})
        if not reqs:
            # A2A 0.3: "security": [{"scheme name": ["scope", ...]}]
            for r in _maps(m, "security"):
                reqs.append(
                    {
                        str(k): [x for x in cast(List[Any], v) if isinstance(x, str)]  # type: ignore[redundant-cast]
                        if isinstance(v, list)
                        else []
                        for k, v in r.items()
                    }
                )
        return cls(
            name=_req_str(m, "name", "AgentCard"),
            description=str(m.get("description", "") or ""),
            version=str(m.get("version", "") or ""),
            supported_interfaces=ifaces,
            provider=AgentProvider(organization=str(prov.get("organization", "")), url=_opt_str(prov, "url"))
            if prov is not None
            else None,
            capabilities=AgentCapabilities(
                streaming=bool(caps.get("streaming")),
                push_notifications=bool(caps.get("pushNotifications")),
                extended_agent_card=bool(caps.get("extendedAgentCard")),
                extensions=[dict(x) for x in _maps(caps, "extensions")],
            ),
            skills=skills,
            default_input_modes=_str_list(m, "defaultInputModes"),
            default_output_modes=_str_list(m, "defaultOutputModes"),
            security_schemes=schemes,
            security_requirements=reqs,
            documentation_url=_opt_str(m, "documentationUrl"),
            icon_url=_opt_str(m, "iconUrl"),
            signatures=[dict(x) for x in _maps(m, "signatures")],
            verification=verification,
            raw=dict(m),
        )


@dataclass
class ListTasksResult:
    """One page of ``list_tasks``."""

    tasks: List[Task]
    next_page_token: str = ""
    total_size: int = 0


@dataclass
class PushNotificationConfig:
    """Where the agent should POST a task's updates (A2A ``TaskPushNotificationConfig``).

    ``token`` is sent back by the agent with each notification so the
    receiver can check it; ``authentication_scheme`` / ``credentials`` are
    what the agent uses to authenticate to the webhook.
    """

    url: str
    task_id: str = ""
    id: Optional[str] = None
    token: Optional[str] = None
    authentication_scheme: Optional[str] = None
    credentials: Optional[str] = None

    def to_wire(self) -> JsonDict:
        d: JsonDict = {"url": self.url}
        if self.task_id:
            d["taskId"] = self.task_id
        if self.id:
            d["id"] = self.id
        if self.token:
            d["token"] = self.token
        if self.authentication_scheme:
            auth: JsonDict = {"scheme": self.authentication_scheme}
            if self.credentials:
                auth["credentials"] = self.credentials
            d["authentication"] = auth
        return d

    @classmethod
    def from_wire(cls, d: Any) -> PushNotificationConfig:
        m = _obj(d, "TaskPushNotificationConfig")
        auth: Mapping[str, Any] = _m(m.get("authentication")) or {}
        return cls(
            url=_req_str(m, "url", "TaskPushNotificationConfig"),
            task_id=_opt_str(m, "taskId") or "",
            id=_opt_str(m, "id") or None,
            token=_opt_str(m, "token") or None,
            authentication_scheme=_opt_str(auth, "scheme") or None,
            credentials=_opt_str(auth, "credentials") or None,
        )
