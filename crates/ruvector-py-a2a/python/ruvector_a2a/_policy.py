"""Client-side task policy and budget: checked before anything is sent."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, Optional, cast

from ruvector_common.errors import BudgetExceeded, InvalidArgument, PolicyViolation

__all__ = ["Budget", "TaskPolicy"]


def _check_limit(name: str, v: Optional[float], integer: bool = False) -> None:
    if v is None:
        return
    x = cast(object, v)  # checked at run time: callers may pass anything
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)):
        raise InvalidArgument(f"{name} must be {'an int' if integer else 'a number'} or None, got {v!r}")
    if not math.isfinite(v) or v <= 0:
        raise InvalidArgument(f"{name} must be positive and finite, got {v!r}")


@dataclass(frozen=True)
class TaskPolicy:
    """Limits for one task, checked before the request is sent.

    * ``max_tokens`` / ``max_cost_usd`` — the call's estimate (``estimated_tokens``,
      ``estimated_cost_usd`` arguments) must not exceed them, and they are what the
      call reserves from the client's :class:`Budget`;
    * ``max_duration_ms`` — the call's deadline: a send or stream still running
      then is abandoned (the stream closed, the task cancelled) with
      :class:`PolicyViolation`;
    * ``allowed_skills`` — the ``skill`` named for the call must be one of them
      (and must be on the peer's card).

    The policy also travels to the peer in the request metadata
    (``metadata.ruvector.policy``) for peers that honour it.
    """

    max_tokens: Optional[int] = None
    max_cost_usd: Optional[float] = None
    max_duration_ms: Optional[int] = None
    allowed_skills: Optional[FrozenSet[str]] = None

    def __post_init__(self) -> None:
        _check_limit("max_tokens", self.max_tokens, integer=True)
        _check_limit("max_cost_usd", self.max_cost_usd)
        _check_limit("max_duration_ms", self.max_duration_ms, integer=True)
        if self.allowed_skills is not None:
            object.__setattr__(self, "allowed_skills", frozenset(self.allowed_skills))

    def check(
        self,
        *,
        skill: Optional[str],
        card_skills: FrozenSet[str],
        estimated_tokens: Optional[int],
        estimated_cost_usd: Optional[float],
    ) -> None:
        """Raises :class:`PolicyViolation` if the call breaks the policy."""
        if skill is not None:
            if self.allowed_skills is not None and skill not in self.allowed_skills:
                raise PolicyViolation(f"skill {skill!r} is not in allowed_skills {sorted(self.allowed_skills)}")
            if card_skills and skill not in card_skills:
                raise PolicyViolation(f"the peer's card has no skill {skill!r}; it has {sorted(card_skills)}")
        elif self.allowed_skills is not None:
            raise PolicyViolation("the policy restricts skills; name the skill of this call")
        if estimated_tokens is not None and self.max_tokens is not None and estimated_tokens > self.max_tokens:
            raise PolicyViolation(f"estimated {estimated_tokens} tokens, over max_tokens = {self.max_tokens}")
        if estimated_cost_usd is not None and self.max_cost_usd is not None and estimated_cost_usd > self.max_cost_usd:
            raise PolicyViolation(f"estimated ${estimated_cost_usd}, over max_cost_usd = ${self.max_cost_usd}")

    def to_wire(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        if self.max_tokens is not None:
            d["maxTokens"] = self.max_tokens
        if self.max_cost_usd is not None:
            d["maxCostUsd"] = self.max_cost_usd
        if self.max_duration_ms is not None:
            d["maxDurationMs"] = self.max_duration_ms
        if self.allowed_skills is not None:
            d["allowedSkills"] = sorted(self.allowed_skills)
        return d


@dataclass
class Budget:
    """A client-wide allowance: tasks sent, tokens and dollars reserved.

    Each send reserves one task plus the call's policy limits (or estimates);
    a call that would overdraw any limit raises :class:`BudgetExceeded` before
    it is sent. Reservations are not refunded (the peer reports no usage in
    A2A 1.0), so the budget is an upper bound of what was authorised.
    """

    max_tasks: Optional[int] = None
    max_tokens: Optional[int] = None
    max_cost_usd: Optional[float] = None
    tasks: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_limit("max_tasks", self.max_tasks, integer=True)
        _check_limit("max_tokens", self.max_tokens, integer=True)
        _check_limit("max_cost_usd", self.max_cost_usd)

    def reserve(self, tokens: Optional[int], cost_usd: Optional[float]) -> None:
        """Reserves one task and the given amounts, or raises :class:`BudgetExceeded`."""
        with self._lock:
            if self.max_tasks is not None and self.tasks + 1 > self.max_tasks:
                raise BudgetExceeded(f"budget: {self.tasks} of max_tasks = {self.max_tasks} already sent")
            if self.max_tokens is not None:
                if tokens is None:
                    raise BudgetExceeded(
                        "budget limits tokens; give the call a policy with max_tokens or estimated_tokens"
                    )
                if self.tokens + tokens > self.max_tokens:
                    raise BudgetExceeded(
                        f"budget: {self.tokens} + {tokens} tokens exceeds max_tokens = {self.max_tokens}"
                    )
            if self.max_cost_usd is not None:
                if cost_usd is None:
                    raise BudgetExceeded(
                        "budget limits cost; give the call a policy with max_cost_usd or estimated_cost_usd"
                    )
                if self.cost_usd + cost_usd > self.max_cost_usd + 1e-12:
                    raise BudgetExceeded(
                        f"budget: ${self.cost_usd:.6g} + ${cost_usd:.6g} exceeds max_cost_usd = ${self.max_cost_usd}"
                    )
            self.tasks += 1
            self.tokens += tokens or 0
            self.cost_usd += cost_usd or 0.0
