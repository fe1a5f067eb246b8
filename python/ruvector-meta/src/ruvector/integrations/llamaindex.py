"""A LlamaIndex vector store backed by a :class:`ruvector.Collection`
(``pip install 'ruvector[llamaindex]'``).

>>> from ruvector.integrations.llamaindex import RuVectorStore
>>> store = RuVectorStore(path="./kb")
>>> index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store))

Nodes are stored under their node ids with their text, their embedding and
LlamaIndex's node metadata (``ref_doc_id`` included, so deleting a document
deletes its nodes). ``MetadataFilters`` become a collection ``where``
evaluated before the search (EQ, NE, GT, GTE, LT, LTE, IN, NIN, CONTAINS,
IS_EMPTY; AND, OR, NOT). Similarities are ``1 - cosine distance``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from ruvector_common.errors import InvalidArgument, MissingComponentError

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores import utils as _node_utils
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import node_to_metadata_dict
except ModuleNotFoundError as _missing:
    if _missing.name is None or not _missing.name.startswith("llama_index"):
        raise
    raise MissingComponentError(
        "ruvector.integrations.llamaindex", "llamaindex", "llama-index-core", "llama_index.core"
    ) from _missing

from ruvector.collection import Collection

__all__ = ["RuVectorStore", "filters_to_where"]

_OPS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
}


def _one(f: MetadataFilter) -> Dict[str, Any]:
    if f.operator == FilterOperator.IS_EMPTY:
        return {f.key: {"$exists": False}}
    if f.operator not in _OPS:
        raise InvalidArgument(f"the metadata filter operator {f.operator.value!r} is not supported")
    return {f.key: {_OPS[f.operator]: f.value}}


def filters_to_where(filters: MetadataFilters) -> Dict[str, Any]:
    """A collection ``where`` equal to LlamaIndex ``MetadataFilters``."""
    parts = [filters_to_where(f) if isinstance(f, MetadataFilters) else _one(f) for f in filters.filters]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$or": parts}}
    return parts[0] if len(parts) == 1 else {"$and": parts}


class RuVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over a :class:`ruvector.Collection` (string node ids)."""

    stores_text: bool = True
    flat_metadata: bool = False

    _collection: Collection = PrivateAttr()

    def __init__(self, path: Optional[str] = None, *, collection: Optional[Collection] = None, **options: Any) -> None:
        super().__init__(stores_text=True)
        if collection is None:
            if path is None:
                raise InvalidArgument("give the collection directory (path=...) or collection=...")
            options.setdefault("embedder", None)  # LlamaIndex embeds; the store keeps vectors
            collection = Collection.open(os.fspath(path), **options)
        self._collection = collection

    @classmethod
    def class_name(cls) -> str:
        return "RuVectorStore"

    @property
    def client(self) -> Collection:
        return self._collection

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        if not nodes:
            return []
        ids = [node.node_id for node in nodes]
        texts = [node.get_content() for node in nodes]
        metadata = [node_to_metadata_dict(node, remove_text=True, flat_metadata=False) for node in nodes]
        vectors = [node.get_embedding() for node in nodes]
        self._collection.upsert(texts, ids=ids, metadata=metadata, vectors=vectors)
        return ids

    def delete(self, ref_doc_id: str, **kwargs: Any) -> None:
        """Deletes every node of the document ``ref_doc_id``."""
        self._collection.delete(where={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **kwargs: Any
    ) -> None:
        where = None if filters is None else filters_to_where(filters)
        if node_ids is None and where is None:
            return
        self._collection.delete(node_ids, where=where)

    def get_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **kwargs: Any
    ) -> List[BaseNode]:
        where = None if filters is None else filters_to_where(filters)
        return [self._node(r.text, r.metadata) for r in self._collection.get(node_ids, where=where)]

    def clear(self) -> None:
        self._collection.delete(where={})

    @staticmethod
    def _node(text: Optional[str], metadata: Dict[str, Any]) -> BaseNode:
        # llama-index annotates the parameter as a bare ``dict``.
        node: BaseNode = _node_utils.metadata_dict_to_node(metadata, text=text)  # pyright: ignore[reportUnknownMemberType]
        return node

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidArgument(f"only dense (DEFAULT) queries are served, got {query.mode}")
        if query.query_embedding is None:
            raise InvalidArgument("the query needs query_embedding")
        where = None if query.filters is None else (filters_to_where(query.filters) or None)
        hits = self._collection.query(
            query.query_embedding, k=query.similarity_top_k, where=where, ids=query.node_ids or None
        )
        nodes = [self._node(h.text, h.metadata) for h in hits]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[1.0 - h.score for h in hits], ids=[str(h.id) for h in hits]
        )

    def close(self) -> None:
        self._collection.close()
