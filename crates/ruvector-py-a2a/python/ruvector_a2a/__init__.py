"""A2A (Agent2Agent) for Python: a client and a server speaking A2A 1.0
JSON-RPC, with the wire layer in Rust (reqwest + rustls, axum, tokio). The
client also speaks A2A 0.3 and RuVector's rvAgent dialect, chosen from the
peer's card.

Client::

    import ruvector_a2a as a2a

    client = await a2a.A2aClient.connect("https://agent.example", expected_agent_id="9f0c...")
    task = await client.send_task("summarise this", policy=a2a.TaskPolicy(max_duration_ms=30_000))
    async for update in client.stream_task("and now stream it"):
        print(update.kind, update.state, update.artifact)

Server::

    async def echo(message: a2a.Message, ctx: a2a.TaskContext) -> str:
        return "echo: " + message.text

    with a2a.A2aServer(a2a.AgentCard(name="echo"), echo, private_key=key) as server:
        print(server.url)

A server whose card declares security (``security_schemes`` and
``security_requirements``) enforces it on every JSON-RPC request through the
``credential_verifier`` it is given, and refuses to start without one.

Agent cards are verified by default: an unsigned, tampered or foreign-signed
card raises :class:`CardSignatureInvalid`. Errors are the shared classes of
``ruvector_common.errors`` (re-exported here).
"""

# The native module first: if ruvector-common is missing or too old, its
# ImportError names the distribution to install.
from . import _native  # loaded first on purpose

# isort: split
from ruvector_common.errors import (
    A2aError,
    BudgetExceeded,
    CardSignatureInvalid,
    InvalidArgument,
    PolicyViolation,
    RuVectorError,
    TransportError,
)

from ._auth import CredentialVerifier, SchemeVerifier
from ._client import A2aClient, TaskStream, TaskStreamSync
from ._native import (
    __version__,
    agent_id_of,
    canonical_json,
    cpu_features,
    generate_private_key,
    public_key_jwk,
    runtime_info,
    sign_card,
    verify_card,
)
from ._policy import Budget, TaskPolicy
from ._server import A2aServer, Handler, TaskContext, default_max_connections
from ._types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Artifact,
    CardVerification,
    ListTasksResult,
    Message,
    Part,
    PushNotificationConfig,
    Role,
    SecurityScheme,
    Task,
    TaskState,
    TaskStatus,
    TaskUpdate,
)

__all__ = [
    "A2aClient",
    "A2aError",
    "A2aServer",
    "AgentCapabilities",
    "AgentCard",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "Artifact",
    "Budget",
    "BudgetExceeded",
    "CardSignatureInvalid",
    "CardVerification",
    "CredentialVerifier",
    "Handler",
    "InvalidArgument",
    "ListTasksResult",
    "Message",
    "Part",
    "PolicyViolation",
    "PushNotificationConfig",
    "Role",
    "RuVectorError",
    "SchemeVerifier",
    "SecurityScheme",
    "Task",
    "TaskContext",
    "TaskPolicy",
    "TaskState",
    "TaskStatus",
    "TaskStream",
    "TaskStreamSync",
    "TaskUpdate",
    "TransportError",
    "__version__",
    "agent_id_of",
    "canonical_json",
    "default_max_connections",
    "cpu_features",
    "generate_private_key",
    "public_key_jwk",
    "runtime_info",
    "sign_card",
    "verify_card",
]

del _native
