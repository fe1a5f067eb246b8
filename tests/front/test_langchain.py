"""The LangChain store passes langchain-tests' standard vector-store suite
(sync and async), plus filters, relevance scores, MMR and reopening."""

from __future__ import annotations

import pathlib
from collections.abc import Generator
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from ruvector.integrations.langchain import RuVectorStore

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # The suite's sync tests share the class mark that runs its async ones.
    pytest.mark.filterwarnings("ignore:The test <Function .*> is marked with '@pytest.mark.asyncio'"),
]


class TestRuVectorStoreStandard(VectorStoreIntegrationTests):
    # langchain-tests' async tests are plain coroutine functions (LangChain
    # runs them in pytest-asyncio's auto mode); this mark runs them here.
    pytestmark = pytest.mark.asyncio

    @pytest.fixture()
    def vectorstore(self, tmp_path: pathlib.Path) -> Generator[RuVectorStore, None, None]:
        store = RuVectorStore(self.get_embeddings(), path=str(tmp_path / "lc"))
        yield store
        store.collection.close()


EMB = DeterministicFakeEmbedding(size=16)


def test_filter_relevance_mmr_and_reopen(tmp_path: pathlib.Path) -> None:
    from front_helpers import HAS_FILTER

    store = RuVectorStore.from_texts(
        ["apples", "pears", "plums", "cherries"],
        EMB,
        metadatas=[{"fruit": "pome"}, {"fruit": "pome"}, {"fruit": "drupe"}, {"fruit": "drupe"}],
        ids=["a", "b", "c", "d"],
        path=str(tmp_path / "lc"),
    )
    assert [d.id for d in store.similarity_search("plums", k=1)] == ["c"]
    if HAS_FILTER:
        docs = store.similarity_search("plums", k=4, filter={"fruit": "pome"})
        assert sorted(str(d.id) for d in docs) == ["a", "b"]
    scored = store.similarity_search_with_relevance_scores("plums", k=2)
    assert scored[0][0].id == "c" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in scored)
    mmr = store.max_marginal_relevance_search("plums", k=2, fetch_k=4)
    assert mmr[0].id == "c" and len(mmr) == 2
    store.collection.close()
    again = RuVectorStore(EMB, path=str(tmp_path / "lc"))
    assert again.get_by_ids(["d"]) == [Document(id="d", page_content="cherries", metadata={"fruit": "drupe"})]
    again.collection.close()


def test_async_search(tmp_path: pathlib.Path) -> None:
    import asyncio

    store = RuVectorStore(EMB, path=str(tmp_path / "lc"))

    async def main() -> Any:
        await store.aadd_texts(["one", "two"], ids=["1", "2"])
        return await store.asimilarity_search("two", k=1)

    assert [d.id for d in asyncio.run(main())] == ["2"]
    store.collection.close()
