"""Framework adapters backed by :class:`ruvector.Collection`:
:mod:`ruvector.integrations.langchain` (``ruvector[langchain]``) and
:mod:`ruvector.integrations.llamaindex` (``ruvector[llamaindex]``). Nothing
is imported here; each submodule imports its framework."""

from __future__ import annotations

__all__: list[str] = []
