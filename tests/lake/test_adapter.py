"""Backends written in Python: called back from Rust worker threads, with the
GIL taken only inside the callback; failures become BackendError."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, List, Tuple, Union

import numpy as np
import pytest

import ruvector_lake as rl

from .conftest import F32, U64, clustered, exact_top, run_threads, sparse_ids


class Store(rl.BackendAdapter):
    """A dict-backed adapter counting its calls."""

    def __init__(self, name: str, data: Dict[str, Tuple[Any, Any]]) -> None:
        super().__init__(name)
        self.data = data
        self.gen = 1
        self.pulls = 0
        self.checks = 0
        self.threads: List[str] = []
        self.lock = threading.Lock()

    def pull(self, collection: str) -> Tuple[Any, Any]:
        with self.lock:
            self.pulls += 1
            self.threads.append(threading.current_thread().name)
        return self.data[collection]

    def generation(self, collection: str) -> Union[int, str]:
        with self.lock:
            self.checks += 1
        return self.gen


def make(n: int = 200, dim: int = 8, seed: int = 1) -> Tuple[F32, U64]:
    return clustered(n, dim, seed=seed), sparse_ids(n, seed=seed)


def test_python_backend_adapter_called_back_on_miss() -> None:
    """M2 acceptance 5: a BackendAdapter subclass is registered and called back
    by ruLake on a cache miss (the GIL round trip)."""
    x, ids = make()
    store = Store("py", {"docs": (ids, x)})
    lake = rl.RuLake()
    lake.register_backend(store)
    hits = lake.search_one("py", "docs", x[4], k=5)
    assert [h.id for h in hits] == exact_top(x, ids, x[4], 5)
    assert hits[0].backend == "py" and store.pulls == 1
    assert store.threads == [threading.main_thread().name] or store.threads


def test_adapter_is_not_pulled_on_every_search() -> None:
    """Upstream defect: an adapter without current_bundle was fully pulled on
    every FRESH search (10 searches -> 11 pulls). Here: one pull per generation."""
    x, ids = make()
    store = Store("py", {"docs": (ids, x)})
    lake = rl.RuLake(consistency=rl.Consistency.FRESH)
    lake.register_backend(store)
    for i in range(10):
        lake.search_one("py", "docs", x[i])
    assert store.pulls == 1 and store.checks == 10
    store.data["docs"] = (ids[:50], np.ascontiguousarray(x[:50]))
    store.gen = 2
    assert len(lake.search_one("py", "docs", x[0], k=100)) == 50
    assert store.pulls == 2
    assert lake.cache_stats().hit_rate == 9 / 11


def test_generation_may_be_a_string_and_data_ref_is_used() -> None:
    class Tagged(Store):
        def generation(self, collection: str) -> Union[int, str]:
            return f"etag-{self.gen}"

        def data_ref(self, collection: str) -> str:
            return f"s3://bucket/{collection}.parquet"

    x, ids = make()
    store = Tagged("py", {"docs": (ids, x)})
    lake = rl.RuLake()
    lake.register_backend(store)
    lake.search_one("py", "docs", x[0])
    b = lake.current_bundle("py", "docs")
    assert b.generation == "etag-1" and b.data_ref == "s3://bucket/docs.parquet" and b.verify()


def test_adapter_exception_becomes_backend_error_with_cause() -> None:
    class Broken(Store):
        def pull(self, collection: str) -> Tuple[Any, Any]:
            raise KeyError(f"no table {collection}")

    lake = rl.RuLake()
    lake.register_backend(Broken("broken", {}))
    with pytest.raises(rl.BackendError) as info:
        lake.search_one("broken", "docs", np.ones(8, dtype=np.float32))
    e = info.value
    assert e.backend == "broken" and "broken" in str(e) and "pull" in str(e)
    assert isinstance(e.__cause__, KeyError)
    assert isinstance(e, rl.LakeError) and ("broken", "docs") not in lake


def test_generation_exception_is_chained_too() -> None:
    class Broken(Store):
        def generation(self, collection: str) -> Union[int, str]:
            raise ConnectionError("warehouse down")

    lake = rl.RuLake()
    lake.register_backend(Broken("b", {}))
    with pytest.raises(rl.BackendError, match="warehouse down") as info:
        lake.search_one("b", "docs", np.ones(8, dtype=np.float32))
    assert isinstance(info.value.__cause__, ConnectionError)


@pytest.mark.parametrize(
    ("result", "needle"),
    [
        (None, "tuple"),
        ((np.arange(3, dtype=np.uint64),), "tuple"),
        ((np.arange(3, dtype=np.uint64), np.ones((3, 4), dtype=np.int64)), "float32"),
        ((np.arange(3, dtype=np.uint64), np.ones(4, dtype=np.float32)), "2-D"),
        ((np.arange(2, dtype=np.uint64), np.ones((3, 4), dtype=np.float32)), "ids"),
        ((np.array([1, 1, 2], dtype=np.uint64), np.ones((3, 4), dtype=np.float32)), "unique"),
        ((np.arange(3, dtype=np.uint64), np.full((3, 4), np.nan, dtype=np.float32)), "finite"),
        ((np.array([-1, 0, 1]), np.ones((3, 4), dtype=np.float32)), "negative|between 0 and"),
        ((np.arange(3, dtype=np.uint64), np.asfortranarray(np.ones((3, 4), dtype=np.float32))), "contiguous"),
    ],
)
def test_wrong_shapes_and_dtypes_from_an_adapter(result: Any, needle: str) -> None:
    class Bad(Store):
        def pull(self, collection: str) -> Any:
            return result

        def generation(self, collection: str) -> Union[int, str]:
            return 1

    lake = rl.RuLake()
    lake.register_backend(Bad("bad", {}))
    with pytest.raises(rl.BackendError, match=needle) as info:
        lake.search_one("bad", "c", np.ones(4, dtype=np.float32))
    assert info.value.backend == "bad"


@pytest.mark.parametrize("gen", [1.5, True, -1, 2**64, None, "x" * 2000])
def test_bad_generations_are_backend_errors(gen: Any) -> None:
    class Bad(Store):
        def generation(self, collection: str) -> Any:
            return gen

    x, ids = make()
    lake = rl.RuLake()
    lake.register_backend(Bad("bad", {"c": (ids, x)}))
    with pytest.raises(rl.BackendError, match="generation"):
        lake.search_one("bad", "c", x[0])


def test_federated_calls_adapters_from_worker_threads_without_deadlock() -> None:
    x, ids = make(400, 8, seed=4)
    stores = [
        Store(f"s{i}", {"docs": (ids[i * 100 : (i + 1) * 100], np.ascontiguousarray(x[i * 100 : (i + 1) * 100]))})
        for i in range(4)
    ]
    lake = rl.RuLake()
    for s in stores:
        lake.register_backend(s)
    hits = lake.search_federated("docs", x[250], k=5)
    assert hits[0].id == int(ids[250]) and hits[0].backend == "s2"
    assert all(s.pulls == 1 for s in stores)
    assert any(name != threading.main_thread().name for s in stores for name in s.threads)


def test_adapter_may_call_the_lake_from_its_callback() -> None:
    x, ids = make()
    lake = rl.RuLake()

    class Reentrant(Store):
        def pull(self, collection: str) -> Tuple[Any, Any]:
            # Calling back into the lake from inside a callback must not deadlock.
            assert lake.cache_stats().primes == 0 and lake.backends == ["re"]
            assert ("re", "docs") not in lake
            return super().pull(collection)

    lake.register_backend(Reentrant("re", {"docs": (ids, x)}))
    assert lake.search_one("re", "docs", x[1], k=1)[0].id == int(ids[1])


def test_a_blocked_adapter_blocks_only_its_own_searches() -> None:
    x, ids = make()
    release = threading.Event()
    entered = threading.Event()

    class Slow(Store):
        def pull(self, collection: str) -> Tuple[Any, Any]:
            entered.set()
            assert release.wait(60)
            return super().pull(collection)

    fast = rl.LocalBackend("fast")
    fast.upsert("docs", ids, x)
    lake = rl.RuLake()
    lake.register_backend(Slow("slow", {"docs": (ids, x)}))
    lake.register_backend(fast)
    out: List[int] = []

    def blocked() -> None:
        out.append(lake.search_one("slow", "docs", x[2], k=1)[0].id)

    t = threading.Thread(target=blocked, daemon=True)
    t.start()
    assert entered.wait(30)
    # While the adapter blocks (holding no lake lock), everything else works.
    for i in range(20):
        assert lake.search_one("fast", "docs", x[i], k=1)[0].id == int(ids[i])
    assert lake.cache_stats().misses >= 1
    release.set()
    t.join(60)
    assert out == [int(ids[2])]


def test_register_rejects_duplicates_and_other_objects() -> None:
    lake = rl.RuLake()
    lake.register_backend(rl.LocalBackend("a"))
    with pytest.raises(rl.LakeError, match="already registered"):
        lake.register_backend(Store("a", {}))
    with pytest.raises(rl.InvalidArgument, match="BackendAdapter"):
        lake.register_backend(object())  # type: ignore[arg-type]
    with pytest.raises(rl.InvalidArgument, match="not allowed"):
        lake.register_backend(Store("../etc", {}))
    assert lake.backends == ["a"]


def test_many_threads_search_a_python_adapter() -> None:
    x, ids = make(300, 8, seed=9)
    store = Store("py", {"docs": (ids, x)})
    lake = rl.RuLake()
    lake.register_backend(store)

    def worker(offset: int) -> None:
        for i in range(offset, 300, 7):
            assert lake.search_one("py", "docs", x[i], k=1)[0].id == int(ids[i])

    assert run_threads([functools.partial(worker, o) for o in range(6)]) == []
    assert store.pulls <= 6


class Stop(BaseException):
    """A BaseException of the user's own that is not an Exception."""


PASS_THROUGH: List[BaseException] = [KeyboardInterrupt(), SystemExit(3), Stop("halt"), GeneratorExit()]


@pytest.mark.parametrize("raised", PASS_THROUGH, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("method", ["pull", "generation", "data_ref"])
def test_base_exceptions_from_a_callback_reach_the_caller_unchanged(raised: BaseException, method: str) -> None:
    """Issue 10: KeyboardInterrupt / SystemExit raised inside an adapter
    callback became BackendError; any BaseException that is not an
    Exception now passes through as itself."""
    x, ids = make()

    class Raising(Store):
        def pull(self, collection: str) -> Tuple[Any, Any]:
            if method == "pull":
                raise raised
            return super().pull(collection)

        def generation(self, collection: str) -> Union[int, str]:
            if method == "generation":
                raise raised
            return super().generation(collection)

        def data_ref(self, collection: str) -> str:
            if method == "data_ref":
                raise raised
            return super().data_ref(collection)

    lake = rl.RuLake()
    other = Store("other", {"docs": (ids, x)})
    lake.register_backend(Raising("py", {"docs": (ids, x)}))
    lake.register_backend(other)
    calls: Dict[str, Callable[[], object]] = {
        "search_one": lambda: lake.search_one("py", "docs", x[0]),
        "search_batch": lambda: lake.search_batch("py", "docs", x[:3]),
        # two targets: the callbacks run on the lake's worker threads
        "search_federated": lambda: lake.search_federated("docs", x[0]),
        "current_bundle": lambda: lake.current_bundle("py", "docs"),
        "session": lambda: lake.session().search_one("py", "docs", x[0]),
    }
    for name, call in calls.items():
        with pytest.raises(type(raised)) as info:
            call()
        assert info.value is raised, name
        assert not isinstance(info.value, rl.RuVectorError), name
    assert ("py", "docs") not in lake


def test_an_ordinary_exception_is_still_a_backend_error() -> None:
    class Broken(Store):
        def generation(self, collection: str) -> Union[int, str]:
            raise LookupError("gone")

    lake = rl.RuLake()
    lake.register_backend(Broken("b", {}))
    with pytest.raises(rl.BackendError) as info:
        lake.search_one("b", "docs", np.ones(8, dtype=np.float32))
    assert isinstance(info.value.__cause__, LookupError)


def test_an_adapter_may_search_the_lake_from_its_callback_on_a_one_thread_pool() -> None:
    """A callback on a worker thread that searches the same lake runs that
    search on its own thread (waiting for another pool task could deadlock
    a small pool)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import numpy as np
        import ruvector_lake as rl
        x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
        ids = np.arange(50, dtype=np.uint64)
        hot = rl.LocalBackend("hot")
        hot.upsert("docs", ids, x)
        lake = rl.RuLake()
        class Nested(rl.BackendAdapter):
            def pull(self, collection):
                # a search of another backend from inside the callback
                assert lake.search_batch("hot", "docs", x[:2], 1)[0][:, 0].tolist() == [0, 1]
                return ids, x
            def generation(self, collection):
                return 1
        lake.register_backend(hot)
        lake.register_backend(Nested("nested"))
        hits = lake.search_federated([("nested", "docs"), ("hot", "docs")], x[3], 2)
        print(sorted({h.id for h in hits}))
        """
    )
    env = {**__import__("os").environ, "RUVECTOR_LAKE_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[3]"
