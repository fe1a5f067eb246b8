"""Server-side authentication: the card's security, enforced through a
verifier the user supplies.

The card's ``securitySchemes`` say *where* a credential is (HTTP bearer or
basic ``Authorization``, an API key in a header, query parameter or cookie;
OAuth 2 and OpenID Connect tokens as bearer tokens) and its
``securityRequirements`` say *which* schemes a request needs (a list of
alternatives; every scheme of one alternative). The native server reads the
credentials of each request and asks the verifier about each one before any
method runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple, Union, cast

from ruvector_common.errors import InvalidArgument, TransportError

from ._types import AgentCard, SecurityScheme

__all__ = ["CredentialVerifier", "SchemeVerifier", "Verifier", "VERIFY_TIMEOUT"]

_log = logging.getLogger("ruvector_a2a.server")

#: ``verify(scheme_name, credential)``: return the caller's principal (any
#: value but None/False: a user name, a claims dict, a user object) to
#: accept, None or False to refuse (HTTP 403); raising means the credential
#: is invalid (HTTP 401). May be ``async def``.
CredentialVerifier = Callable[[str, str], Union[Any, Awaitable[Any]]]
#: ``verify(credential)`` for one scheme (the values of a per-scheme mapping).
SchemeVerifier = Callable[[str], Union[Any, Awaitable[Any]]]
#: What ``A2aServer(credential_verifier=...)`` takes: one verifier for every
#: scheme, or ``{scheme_name: verifier}``.
Verifier = Union[CredentialVerifier, Mapping[str, SchemeVerifier]]

#: Seconds an async verifier may take before the request is answered 503.
VERIFY_TIMEOUT = 30.0

#: (scheme name, credential source, parameter) as the native server takes it.
_Req = Tuple[str, str, str]


def _source(name: str, s: SecurityScheme) -> Tuple[str, str]:
    """Where the credential of scheme ``name`` is read from."""
    kind = s.type
    if kind == "http":
        http = (s.scheme or "").lower()
        if http in ("bearer", "basic"):
            return http, ""
        raise InvalidArgument(
            f"security scheme {name!r}: HTTP scheme {s.scheme!r} is not supported (use bearer or basic)"
        )
    if kind == "apiKey":
        where = (s.location or "").lower()
        if where not in ("header", "query", "cookie") or not s.name:
            raise InvalidArgument(
                f"security scheme {name!r}: an API key needs a name and a location of header, query or cookie, "
                f"got name={s.name!r}, location={s.location!r}"
            )
        return where, s.name
    if kind in ("oauth2", "openIdConnect"):
        return "bearer", ""  # their access tokens come as bearer tokens
    if kind == "mutualTLS":
        raise InvalidArgument(
            f"security scheme {name!r}: mutual TLS cannot be enforced by A2aServer, which serves plain HTTP "
            "(terminate TLS in a proxy that checks client certificates, and leave the scheme off this card)"
        )
    raise InvalidArgument(f"security scheme {name!r}: unknown scheme type {kind!r}")


def _requirements(raw: Mapping[str, Any], card: AgentCard) -> List[Dict[str, List[str]]]:
    reqs = list(card.security_requirements)
    if not reqs:
        legacy = raw.get("security")  # A2A 0.3: [{name: [scopes]}]
        if isinstance(legacy, list):
            for r in cast(List[Any], legacy):  # type: ignore[redundant-cast]
                if isinstance(r, Mapping):
                    reqs.append({str(k): [] for k in cast(Mapping[str, Any], r)})
    return reqs


def auth_plan(card_json: Mapping[str, Any]) -> Optional[List[List[_Req]]]:
    """The card's security as the native server enforces it: alternatives of
    ``(scheme, source, parameter)``; None when the card declares none.

    Raises :class:`InvalidArgument` for what cannot be enforced: a
    requirement naming an undeclared scheme, schemes without requirements,
    per-skill requirements, mutual TLS, unknown scheme types.
    """
    if not any(card_json.get(k) for k in ("securitySchemes", "securityRequirements", "security", "skills")):
        return None
    try:
        card = AgentCard.from_wire(dict(card_json))
    except TransportError as e:  # from_wire speaks of peers; this card is the caller's
        raise InvalidArgument(f"card: {e}") from None
    reqs = _requirements(card_json, card)
    skills = card_json.get("skills")
    for s in cast(List[Any], skills) if isinstance(skills, list) else []:  # type: ignore[redundant-cast]
        if isinstance(s, Mapping) and cast(Mapping[str, Any], s).get("securityRequirements"):
            raise InvalidArgument(
                "per-skill securityRequirements cannot be enforced by A2aServer (a request does not say "
                "which skill it is for); put the requirements on the card"
            )
    if not reqs:
        if card.security_schemes:
            raise InvalidArgument(
                f"the card declares security schemes {sorted(card.security_schemes)} but no security_requirements, "
                "so clients would send no credentials; add e.g. security_requirements=[{"
                f"{next(iter(card.security_schemes))!r}: []}}] (or drop the schemes)"
            )
        return None
    plan: List[List[_Req]] = []
    for r in reqs:
        alt: List[_Req] = []
        for name in r:
            scheme = card.security_schemes.get(name)
            if scheme is None:
                raise InvalidArgument(
                    f"security_requirements name scheme {name!r}, which security_schemes does not declare "
                    f"(it declares {sorted(card.security_schemes)})"
                )
            kind, param = _source(name, scheme)
            alt.append((name, kind, param))
        plan.append(alt)
    return plan


class CredentialCheck:
    """The ``check_credential(scheme, credential) -> (status, principal)``
    the native server calls (from a worker thread) for each credential.

    A sync verifier runs on that worker thread (it may block); an async one
    runs on the server's event loop, for at most :data:`VERIFY_TIMEOUT`.
    """

    def __init__(self, verifier: Verifier, schemes: List[str]) -> None:
        if isinstance(verifier, Mapping):
            per = cast(Mapping[str, Any], verifier)
            missing = sorted(set(schemes) - set(per))
            if missing:
                raise InvalidArgument(f"credential_verifier has no verifier for the card's schemes {missing}")
            for k, v in per.items():
                if not callable(v):
                    raise InvalidArgument(f"credential_verifier[{k!r}] must be callable")
            self._per: Optional[Dict[str, SchemeVerifier]] = dict(per)
            self._one: Optional[CredentialVerifier] = None
        elif callable(verifier):
            self._per = None
            self._one = verifier
        else:
            raise InvalidArgument(
                f"credential_verifier must be a callable or a mapping of scheme name to callable, "
                f"got {type(verifier).__name__}"
            )
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def _call(self, scheme: str, credential: str) -> Any:
        if self._per is not None:
            return self._per[scheme](credential)
        assert self._one is not None
        return self._one(scheme, credential)

    def __call__(self, scheme: str, credential: str) -> Tuple[int, Any]:
        try:
            out = self._call(scheme, credential)
            if inspect.isawaitable(out):
                loop = self.loop
                if loop is None or loop.is_closed():
                    return 503, None

                async def wait() -> Any:
                    return await cast(Awaitable[Any], out)

                out = asyncio.run_coroutine_threadsafe(wait(), loop).result(VERIFY_TIMEOUT)
        except concurrent.futures.TimeoutError:
            _log.warning("the credential verifier took over %s s for scheme %r", VERIFY_TIMEOUT, scheme)
            return 503, None
        except Exception as e:  # an invalid credential, as the verifier says
            _log.info("credential refused as invalid for scheme %r: %s", scheme, type(e).__name__)
            return 401, None
        if out is None or out is False:
            return 403, None
        return 200, out
