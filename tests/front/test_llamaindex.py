"""The LlamaIndex store, end to end with llama-index-core's own types:
insert nodes through a VectorStoreIndex, query with metadata filters,
delete a document."""

from __future__ import annotations

import pathlib
from typing import Any, List

import pytest

pytest.importorskip("llama_index.core")
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from ruvector.integrations.llamaindex import RuVectorStore, filters_to_where

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class WordEmbedding(BaseEmbedding):
    """Deterministic bag-of-words embeddings (the test needs no model)."""

    def _vec(self, text: str) -> List[float]:
        from front_helpers import HashEmbedder

        return [float(x) for x in HashEmbedder(16).embed_batch([text])[0]]

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._vec(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._vec(query)

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._vec(text)


def test_filters_to_where() -> None:
    filters = MetadataFilters(
        filters=[
            MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
            MetadataFilters(
                filters=[
                    MetadataFilter(key="lang", value="en"),
                    MetadataFilter(key="tags", value="faq", operator=FilterOperator.CONTAINS),
                ],
                condition=FilterCondition.OR,
            ),
        ]
    )
    assert filters_to_where(filters) == {
        "$and": [{"year": {"$gte": 2020}}, {"$or": [{"lang": {"$eq": "en"}}, {"tags": {"$contains": "faq"}}]}]
    }


def test_index_query_filter_delete(tmp_path: pathlib.Path) -> None:
    from front_helpers import HAS_FILTER

    store = RuVectorStore(path=str(tmp_path / "li"))
    documents = [
        Document(text="cats purr and sleep", doc_id="doc-cats", metadata={"topic": "pets", "year": 2021}),
        Document(text="dogs bark at the mail carrier", doc_id="doc-dogs", metadata={"topic": "pets", "year": 2019}),
        Document(text="interest rates rose again", doc_id="doc-rates", metadata={"topic": "finance", "year": 2023}),
    ]
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=WordEmbedding()
    )
    assert store.client.count() == 3
    retriever = index.as_retriever(similarity_top_k=1)
    [hit] = retriever.retrieve("why do cats purr")
    assert hit.node.get_content() == "cats purr and sleep" and hit.node.ref_doc_id == "doc-cats"
    assert hit.node.metadata == {"topic": "pets", "year": 2021} and 0.0 < (hit.score or 0) <= 1.0
    query = VectorStoreQuery(
        query_embedding=WordEmbedding()._vec("pets"),  # pyright: ignore[reportPrivateUsage]
        similarity_top_k=3,
        filters=MetadataFilters(filters=[MetadataFilter(key="year", value=2020, operator=FilterOperator.GT)]),
    )
    if HAS_FILTER:
        result = store.query(query)
        assert sorted(str(n.ref_doc_id) for n in result.nodes or []) == ["doc-cats", "doc-rates"]
        assert len(result.similarities or []) == 2
    index.delete_ref_doc("doc-cats")
    assert store.client.count() == 2
    assert all(n.ref_doc_id != "doc-cats" for n in store.get_nodes())
    [again] = index.as_retriever(similarity_top_k=1).retrieve("why do cats purr")
    assert again.node.ref_doc_id != "doc-cats"
    store.close()
    reopened = RuVectorStore(path=str(tmp_path / "li"))
    nodes: Any = reopened.get_nodes(["missing", *[n.node_id for n in reopened.get_nodes()]])
    assert len(nodes) == 2 and all(isinstance(n, TextNode) for n in nodes)
    reopened.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="finance")]))
    assert reopened.client.count() == 1
    reopened.clear()
    assert reopened.client.count() == 0
    reopened.close()
