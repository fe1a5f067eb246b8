"""Smoke test of one installed RuVector distribution: import it and do real work.

    python smoke.py ruvector-rabitq [--version 0.1.0]

The release workflow runs this on every platform it builds for, right after
installing the wheel it is about to publish; ``tests/release`` runs it on the
wheels of ``dist/``. Each check does the component's real job (a search, an
embedding, an A2A round trip on loopback) and asserts on the values, so a
wheel that imports but cannot work fails here. Standard library and the
installed distribution only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import platform
import sys
from typing import Any, Callable, Dict


def _vectors(n: int, dim: int) -> Any:
    import numpy as np

    return np.random.default_rng(7).standard_normal((n, dim)).astype(np.float32)


def smoke_common() -> str:
    import ruvector_common.errors as errors

    assert errors.ERRORS_ABI >= 1, errors.ERRORS_ABI
    assert issubclass(errors.InvalidArgument, ValueError)
    return f"ERRORS_ABI {errors.ERRORS_ABI}"


def smoke_rabitq() -> str:
    import ruvector_rabitq as rr

    x = _vectors(2_000, 32)
    for cls in (rr.RabitqPlusIndex, rr.IvfRabitqIndex):
        index = cls.build(x, seed=42)
        hits = index.search(x[123], k=3)
        assert hits[0].id == 123 and hits[0].score < 1e-3, (cls.__name__, hits)
        ids, _ = index.search_batch(x[:50], k=1)
        assert ids[:, 0].tolist() == list(range(50)), cls.__name__
    flat = rr.FlatF32Index.build(x)
    # float64 is converted (one copy), so it finds the same vector.
    assert flat.search(x[5].astype("float64"), k=1)[0].id == 5
    try:
        flat.search(x[0][:31], k=1)
    except rr.DimensionMismatch as error:
        assert "31" in str(error) and "32" in str(error), error
    else:
        raise AssertionError("a query of the wrong dimension was accepted")
    return f"search ok, cpu {rr.cpu_features()}"


def smoke_lake() -> str:
    import numpy as np

    import ruvector_lake as rl

    x = _vectors(1_000, 16)
    hot = rl.LocalBackend("hot")
    hot.upsert("docs", np.arange(10**12, 10**12 + 1_000, dtype=np.uint64), x)
    lake = rl.RuLake.builder().rerank_factor(20).build()
    lake.register_backend(hot)
    hit = lake.search_one("hot", "docs", x[42], k=1)[0]
    assert hit.id == 10**12 + 42, hit

    async def both() -> Any:
        return await lake.search_one_async("hot", "docs", x[7], k=1)

    assert asyncio.run(both())[0].id == 10**12 + 7
    return "search_one and search_one_async ok"


def smoke_embed() -> str:
    import numpy as np

    import ruvector_embed as re

    docs = ["Knead the dough and bake the bread.", "The bank raised interest rates.", "Cats sleep all day."]
    emb = re.Embedder.from_pretrained("all-MiniLM-L6-v2", download=False)
    vecs = emb.embed_batch(docs)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32, (vecs.shape, vecs.dtype)
    query = emb.embed("How do I bake a loaf?")
    best = int(np.argmax(vecs @ query))
    assert best == 0, (best, vecs @ query)
    return "embed + nearest neighbour ok"


def smoke_a2a() -> str:
    import ruvector_a2a as a2a

    async def echo(message: Any, ctx: Any) -> str:
        return "echo: " + str(message.text)

    async def roundtrip() -> str:
        key = a2a.generate_private_key()
        async with a2a.A2aServer(a2a.AgentCard(name="smoke"), echo, private_key=key) as server:
            agent_id = a2a.agent_id_of(a2a.public_key_jwk(key))
            client = await a2a.A2aClient.connect(server.url, expected_agent_id=agent_id)
            task = await client.send_task("ping")
            assert task.state == a2a.TaskState.COMPLETED, task
            assert task.status.message is not None, task
            return str(task.status.message.text)

    text = asyncio.run(roundtrip())
    assert text == "echo: ping", text
    return "A2A round trip on loopback ok"


def smoke_meta() -> str:
    import ruvector

    available = ruvector.available()
    if available.get("rabitq"):
        x = _vectors(500, 16)
        hits = ruvector.RabitqPlusIndex.build(x, seed=1).search(x[9], k=1)
        assert hits[0].id == 9, hits
    return f"available {available}"


CHECKS: Dict[str, Callable[[], str]] = {
    "ruvector-common": smoke_common,
    "ruvector-rabitq": smoke_rabitq,
    "ruvector-lake": smoke_lake,
    "ruvector-embed": smoke_embed,
    "ruvector-a2a": smoke_a2a,
    "ruvector": smoke_meta,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Smoke test of one installed RuVector distribution.")
    parser.add_argument("dist", choices=sorted(CHECKS))
    parser.add_argument("--version", help="the version that must be installed")
    args = parser.parse_args()
    installed = importlib.metadata.version(args.dist)
    if args.version is not None and installed != args.version:
        sys.exit(f"{args.dist}: installed {installed}, expected {args.version}")
    module = importlib.import_module(args.dist.replace("-", "_") if args.dist != "ruvector" else "ruvector")
    result = CHECKS[args.dist]()
    where = f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    print(f"smoke ok: {args.dist} {installed} ({module.__name__}) on {where}: {result}")


if __name__ == "__main__":
    main()
