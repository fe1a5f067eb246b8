"""A LangChain ``VectorStore`` backed by a :class:`ruvector.Collection`
(``pip install 'ruvector[langchain]'``).

>>> from ruvector.integrations.langchain import RuVectorStore
>>> store = RuVectorStore.from_texts(["a cat", "a dog"], embeddings, path="./kb")
>>> store.similarity_search("kitten", k=1, filter={"lang": "en"})

Documents keep their LangChain ids (strings) as the collection's ids,
``page_content`` as its text and ``metadata`` as its metadata, so a store
reopened on the same directory finds everything again. ``filter`` is a
collection ``where``. Scores of ``similarity_search_with_score`` are
distances (lower is closer); relevance scores are in [0, 1].
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

from ruvector_common.errors import MissingComponentError

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ModuleNotFoundError as _missing:
    if _missing.name is None or not _missing.name.startswith("langchain_core"):
        raise
    raise MissingComponentError(
        "ruvector.integrations.langchain", "langchain", "langchain-core", "langchain_core"
    ) from _missing

from ruvector.collection import Collection, stack_vectors

__all__ = ["RuVectorStore", "RuVectorEmbeddings"]

_VST = TypeVar("_VST", bound="RuVectorStore")


class RuVectorEmbeddings(Embeddings):
    """LangChain ``Embeddings`` computed by ``ruvector-embed`` (default
    all-MiniLM-L6-v2, offline first, no PyTorch)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2") -> None:
        import ruvector_embed

        self._model = ruvector_embed.Embedder.from_pretrained(model)
        self.name = self._model.name

    def embed_documents(self, texts: List[str]) -> List[List[float]]:
        rows: List[List[float]] = self._model.embed_batch(texts).tolist()
        return rows

    def embed_query(self, text: str) -> List[float]:
        row: List[float] = self._model.embed(text).tolist()
        return row


class RuVectorStore(VectorStore):
    """LangChain vector store over a :class:`ruvector.Collection` of string ids."""

    def __init__(
        self,
        embedding: Embeddings,
        *,
        path: Optional[str] = None,
        collection: Optional[Collection] = None,
        **collection_options: Any,
    ) -> None:
        """Wraps ``collection``, or opens (creating) the collection directory
        ``path``, or a fresh temporary one; texts are embedded with ``embedding``."""
        self._embedding = embedding
        if collection is None:
            if path is None:
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="ruvector-langchain-")
                path = os.path.join(self._tmp.name, "collection")
            collection = Collection.open(path, embedder=embedding, **collection_options)
        self.collection = collection

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    # -- writing ------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict[str, Any]]] = None,
        *,
        ids: Optional[Sequence[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Embeds and stores ``texts``; an existing id is replaced (an id
        that is ``None`` gets a new one)."""
        text_list = list(texts)
        if not text_list:
            return []
        given = [None] * len(text_list) if ids is None else list(ids)
        id_list = [i if i is not None else uuid.uuid4().hex for i in given]
        vectors = self._embedding.embed_documents(text_list)
        self.collection.upsert(text_list, ids=id_list, metadata=metadatas, vectors=vectors)
        return id_list

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        if "ids" not in kwargs:
            kwargs["ids"] = [doc.id or uuid.uuid4().hex for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [dict(doc.metadata) for doc in documents], **kwargs
        )

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes these ids (unknown ones are ignored); ``ids=None`` deletes all."""
        if ids is None:
            self.collection.delete(where={})
        elif ids:
            self.collection.delete(list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        return [Document(id=r.id, page_content=r.text or "", metadata=r.metadata) for r in self.collection.get(ids)]

    # -- searching ----------------------------------------------------------------------

    def _search(self, vector: List[float], k: int, filter: Optional[dict[str, Any]]) -> List[Tuple[Document, float]]:
        hits = self.collection.query(vector, k=k, where=filter)
        return [(Document(id=h.id, page_content=h.text or "", metadata=h.metadata), h.score) for h in hits]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """Documents and their distances (lower is closer)."""
        return self._search(self._embedding.embed_query(query), k, filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> List[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[dict[str, Any]] = None, **kwargs: Any
    ) -> List[Document]:
        return [doc for doc, _ in self._search(embedding, k, filter)]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        import numpy as np
        from langchain_core.vectorstores.utils import maximal_marginal_relevance

        query_vector = self._embedding.embed_query(query)
        hits = self.collection.query(query_vector, k=fetch_k, where=filter)
        if not hits:
            return []
        records = {r.id: r for r in self.collection.get([h.id for h in hits], include_vectors=True)}
        vectors = stack_vectors([records[h.id] for h in hits], len(query_vector)).tolist()
        chosen = maximal_marginal_relevance(np.asarray(query_vector), vectors, lambda_mult=lambda_mult, k=k)
        return [Document(id=hits[i].id, page_content=hits[i].text or "", metadata=hits[i].metadata) for i in chosen]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self.collection.metric
        if metric == "cosine":
            return lambda distance: max(0.0, min(1.0, 1.0 - distance / 2.0))
        if metric == "ip":
            return lambda distance: 1.0 - distance
        return lambda distance: 1.0 / (1.0 + distance)

    @classmethod
    def from_texts(
        cls: Type[_VST],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict[str, Any]]] = None,
        *,
        ids: Optional[List[str]] = None,
        path: Optional[str] = None,
        **kwargs: Any,
    ) -> _VST:
        store = cls(embedding, path=path, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
