"""``ruvector serve``, driven by the official ``mcp`` SDK's own client over
stdio and over streamable HTTP on loopback (token, read-only mode)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List

import pytest

mcp = pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

RUVECTOR = shutil.which("ruvector") or ""


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


def _stdio(data_dir: pathlib.Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=RUVECTOR or sys.executable,
        args=[*([] if RUVECTOR else ["-m", "ruvector"]), "serve", "--data-dir", str(data_dir), *extra],
        env=dict(os.environ),
    )


VECS = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0]]


async def _session(client: Any) -> Dict[str, Any]:
    tools = sorted(t.name for t in (await client.list_tools()).tools)
    created = _data(await client.call_tool("create_collection", {"collection": "kb", "embedder": None}))
    added = _data(
        await client.call_tool(
            "add_documents",
            {
                "collection": "kb",
                "texts": ["alpha", "beta", "alpha prime"],
                "vectors": VECS,
                "metadata": [{"g": 1}, {"g": 2}, {"g": 1}],
            },
        )
    )
    hits = _data(await client.call_tool("query", {"collection": "kb", "vector": [1, 0, 0, 0], "k": 2}))
    described = _data(await client.call_tool("describe_collection", {"collection": "kb"}))
    got = _data(await client.call_tool("get_documents", {"collection": "kb", "where": {"g": 2}}))
    bad = await client.call_tool("query", {"collection": "../etc", "vector": [1, 0, 0, 0]})
    deleted = _data(await client.call_tool("delete_documents", {"collection": "kb", "ids": [1, 77, 1]}))
    listed = _data(await client.call_tool("list_collections", {}))
    return {
        "tools": tools,
        "created": created,
        "added": added,
        "hits": hits,
        "described": described,
        "got": got,
        "bad": (bad.is_error, bad.content[0].text),
        "deleted": deleted,
        "listed": listed,
    }


def _check(out: Dict[str, Any]) -> None:
    assert out["tools"] == [
        "add_documents",
        "create_collection",
        "delete_documents",
        "describe_collection",
        "get_documents",
        "list_collections",
        "query",
    ]
    assert out["created"]["count"] == 0
    assert out["added"] == {"ids": [0, 1, 2], "count": 3}
    assert [h["id"] for h in out["hits"]["hits"]] == [0, 2]
    assert out["hits"]["hits"][0]["text"] == "alpha" and out["hits"]["hits"][0]["metadata"] == {"g": 1}
    assert out["described"]["count"] == 3 and out["described"]["dim"] == 4 and "path" not in out["described"]
    assert out["got"] == {"documents": [{"id": 1, "text": "beta", "metadata": {"g": 2}}]}
    assert out["bad"][0] is True and "invalid collection name" in out["bad"][1]
    assert out["deleted"] == {"deleted": 1, "count": 2, "missing": [77]}
    assert out["listed"]["collections"] == [{"name": "kb", "count": 2}]


def test_stdio_with_the_sdk_client(tmp_path: pathlib.Path) -> None:
    async def main() -> Dict[str, Any]:
        async with Client(_stdio(tmp_path / "data")) as client:
            return await _session(client)

    _check(asyncio.run(asyncio.wait_for(main(), 120)))
    # The server closed its collections: the directory opens again.
    import ruvector

    with ruvector.Collection.open(tmp_path / "data" / "kb") as coll:
        assert coll.count() == 2


def test_read_only_stdio_offers_no_writes(tmp_path: pathlib.Path) -> None:
    import numpy as np

    import ruvector

    with ruvector.Collection.open(tmp_path / "data" / "kb", embedder=None) as coll:
        coll.add(["x"], vectors=np.ones((1, 4), np.float32))

    async def main() -> Any:
        async with Client(_stdio(tmp_path / "data", "--read-only")) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            listed = _data(await client.call_tool("list_collections", {}))
            refused = await client.call_tool("delete_documents", {"collection": "kb", "where": {}})
            return tools, listed, refused.is_error

    tools, listed, refused = asyncio.run(asyncio.wait_for(main(), 120))
    assert tools == ["describe_collection", "get_documents", "list_collections", "query"]
    assert listed == {"collections": [{"name": "kb", "count": 1}], "read_only": True}
    assert refused is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_http(data_dir: pathlib.Path, env: Dict[str, str], *extra: str) -> Any:
    port = _free_port()
    command = [RUVECTOR] if RUVECTOR else [sys.executable, "-m", "ruvector"]
    proc = subprocess.Popen(
        [*command, "serve", "--http", "--port", str(port), "--data-dir", str(data_dir), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited") from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the HTTP server did not start")


def test_streamable_http_with_a_token(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ, RUVECTOR_MCP_TOKEN="s3cret-token")
    proc, url = _start_http(tmp_path / "data", env)
    try:

        async def main() -> Any:
            headers = {"Authorization": "Bearer s3cret-token"}
            async with Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))) as c:
                out = await _session(c)
            refused: List[str] = []
            for bad in ({}, {"Authorization": "Bearer wrong"}):
                try:
                    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=bad))
                    async with Client(transport) as c:
                        await c.list_tools()
                    refused.append("accepted")
                except Exception as error:  # the SDK raises on the 401
                    refused.append(type(error).__name__)
            return out, refused

        out, refused = asyncio.run(asyncio.wait_for(main(), 120))
        _check(out)
        assert "accepted" not in refused
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_http_without_token_refuses_a_public_bind(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUVECTOR_MCP_TOKEN"}
    command = [RUVECTOR] if RUVECTOR else [sys.executable, "-m", "ruvector"]
    proc = subprocess.run(
        [*command, "serve", "--http", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "without a token" in proc.stderr
