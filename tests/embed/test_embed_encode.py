"""``Embedder.encode`` (issue 15): sentence-transformers' ``encode`` on the
Rust embedder, with the real all-MiniLM-L6-v2 weights.

Every value is checked against :meth:`Embedder.embed` / ``embed_batch``
(bit for bit) or against sentence-transformers' own reference embeddings.
"""

from __future__ import annotations

import os
import pickle
import sys
import tracemalloc
from pathlib import Path
from typing import Any, Iterable, Iterator, List

import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import MIN_COSINE, cosines, json_bytes, link_model, run_child

import ruvector_embed as rve

Array = npt.NDArray[np.float32]

TEXTS = ["The cat sits outside", "A man is playing guitar", "", "  padded  ", "日本語のテキスト", "emoji 🚀 rocket"]


@pytest.fixture(scope="module")
def tiny(minilm_dir: Path) -> rve.Embedder:
    """MiniLM cut to 4 tokens per text: cheap enough for 10,000 texts."""
    return rve.Embedder.from_pretrained(minilm_dir, max_seq_length=4)


def prompt_folder(tmp_path: Path, minilm_dir: Path, config: Any) -> Path:
    """The MiniLM folder (linked) with ``config`` as its
    ``config_sentence_transformers.json``."""
    return link_model(minilm_dir, tmp_path / "with-prompts", {"config_sentence_transformers.json": json_bytes(config)})


# -- the same values as embed / embed_batch ------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3, 32, 1000])
def test_encode_equals_embed_batch_bitwise(minilm: rve.Embedder, sentences: List[str], batch_size: int) -> None:
    want = minilm.embed_batch(sentences)
    got = minilm.encode(sentences, batch_size=batch_size)
    assert got.dtype == np.float32 and got.shape == (len(sentences), 384)
    np.testing.assert_array_equal(got, want)


def test_one_text_equals_embed_bitwise(minilm: rve.Embedder, sentences: List[str]) -> None:
    for text in sentences[:8]:
        got = minilm.encode(text)
        assert got.shape == (384,) and got.dtype == np.float32
        np.testing.assert_array_equal(got, minilm.embed(text))


def test_matches_sentence_transformers_reference(
    minilm: rve.Embedder, sentences: List[str], reference: npt.NDArray[np.float32]
) -> None:
    # Code written for SentenceTransformer("all-MiniLM-L6-v2").encode, with
    # every keyword it commonly passes, runs unchanged (no torch involved) and
    # gives sentence-transformers' own embeddings.
    def st_style(model: Any) -> Any:
        return model.encode(
            sentences,
            batch_size=16,
            show_progress_bar=False,
            output_value="sentence_embedding",
            precision="float32",
            convert_to_numpy=True,
            convert_to_tensor=False,
            device="cpu",
            normalize_embeddings=True,
            prompt_name=None,
            prompt=None,
        )

    got: Array = st_style(minilm)
    assert isinstance(got, np.ndarray) and got.shape == reference.shape
    assert cosines(got, reference).min() >= MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # The sentence-transformers idiom of a positional batch size also runs.
    np.testing.assert_array_equal(minilm.encode(sentences, 8), got)


# -- shapes ------------------------------------------------------------------------


def test_shapes_of_every_input_kind(minilm: rve.Embedder) -> None:
    want = minilm.embed_batch(TEXTS)
    np.testing.assert_array_equal(minilm.encode(tuple(TEXTS)), want)
    np.testing.assert_array_equal(minilm.encode(t for t in TEXTS), want)
    np.testing.assert_array_equal(minilm.encode(iter(TEXTS), batch_size=4), want)
    np.testing.assert_array_equal(minilm.encode(np.array(TEXTS)), want)
    empties: List[Iterable[str]] = [[], (), iter([])]
    for empty in empties:
        out = minilm.encode(empty)
        assert out.shape == (0, 384) and out.dtype == np.float32
    listed = minilm.encode(TEXTS, convert_to_numpy=False, batch_size=4)
    assert isinstance(listed, list) and len(listed) == len(TEXTS)
    for row, w in zip(listed, want):
        assert row.shape == (384,) and row.dtype == np.float32
        np.testing.assert_array_equal(row, w)
    assert minilm.encode([], convert_to_numpy=False) == []
    one = minilm.encode("hello", convert_to_numpy=False)
    assert isinstance(one, np.ndarray) and one.shape == (384,)
    np.testing.assert_array_equal(one, minilm.embed("hello"))


def test_length_that_lies_is_followed(minilm: rve.Embedder) -> None:
    # The output is preallocated from len(); a container whose iteration gives
    # more or fewer items than its len() still gets one row per item.
    class Lying:
        def __init__(self, items: List[str], claimed: int) -> None:
            self.items, self.claimed = items, claimed

        def __len__(self) -> int:
            return self.claimed

        def __iter__(self) -> Iterator[str]:
            return iter(self.items)

    want = minilm.embed_batch(TEXTS)
    for claimed in (0, 2, 100):
        got = minilm.encode(Lying(TEXTS, claimed), batch_size=4)
        np.testing.assert_array_equal(got, want)


# -- normalisation ---------------------------------------------------------------------


def test_normalize_on_and_off(minilm: rve.Embedder, minilm_dir: Path) -> None:
    raw_model = rve.Embedder.from_pretrained(minilm_dir, normalize=False)
    assert minilm.normalize and not raw_model.normalize
    unit = minilm.encode(TEXTS)
    raw = minilm.encode(TEXTS, normalize_embeddings=False)
    norms = np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    assert norms.min() > 1.5, norms  # MiniLM's pooled vectors are far from unit length
    # False is the pooled embedding itself: what a normalize=False model gives.
    np.testing.assert_array_equal(raw, raw_model.embed_batch(TEXTS))
    np.testing.assert_array_equal(raw_model.encode(TEXTS), raw)
    # True on a model that does not normalise: the normalising model's values.
    np.testing.assert_array_equal(raw_model.encode(TEXTS, normalize_embeddings=True), unit)
    np.testing.assert_allclose(unit, raw / norms[:, None], rtol=0, atol=1e-6)
    one = minilm.encode("The cat sits outside", normalize_embeddings=False)
    np.testing.assert_array_equal(one, raw[0])


# -- prompts -----------------------------------------------------------------------


def test_prompt_is_prepended_exactly(minilm: rve.Embedder) -> None:
    x = "what is the capital of France?"
    np.testing.assert_array_equal(minilm.encode(x, prompt="query: "), minilm.encode("query: " + x))
    np.testing.assert_array_equal(minilm.encode(x, prompt="query: "), minilm.embed("query: " + x))
    got = minilm.encode(TEXTS, prompt="passage: ", batch_size=4)
    np.testing.assert_array_equal(got, minilm.embed_batch(["passage: " + t for t in TEXTS]))
    assert not np.array_equal(got, minilm.encode(TEXTS))
    assert minilm.prompts == {} and minilm.default_prompt_name is None


def test_prompts_from_the_folder(tmp_path: Path, minilm_dir: Path) -> None:
    config = {
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": "passage",
    }
    emb = rve.Embedder.from_pretrained(prompt_folder(tmp_path, minilm_dir, config))
    assert emb.prompts == {"query": "query: ", "passage": "passage: "}
    assert emb.default_prompt_name == "passage"
    emb.prompts["query"] = "changed"  # a copy: the embedder is immutable
    assert emb.prompts["query"] == "query: "
    x = "hello there"
    np.testing.assert_array_equal(emb.encode(x, prompt_name="query"), emb.embed("query: " + x))
    # No prompt given: the default one, as sentence-transformers does.
    np.testing.assert_array_equal(emb.encode(x), emb.embed("passage: " + x))
    # An explicit prompt wins over the default and over prompt_name.
    np.testing.assert_array_equal(emb.encode(x, prompt=""), emb.embed(x))
    np.testing.assert_array_equal(emb.encode(x, prompt="q: ", prompt_name="passage"), emb.embed("q: " + x))
    with pytest.raises(
        rve.InvalidArgument, match=r"unknown prompt_name 'search': the model's prompts are 'passage', 'query'"
    ):
        emb.encode(x, prompt_name="search")


def test_prompts_given_to_from_pretrained_and_kept_by_pickle(tmp_path: Path, minilm_dir: Path) -> None:
    emb = rve.Embedder.from_pretrained(minilm_dir, prompts={"q": "search_query: "}, default_prompt_name="q")
    assert emb.prompts == {"q": "search_query: "} and emb.default_prompt_name == "q"
    np.testing.assert_array_equal(emb.encode("x"), emb.embed("search_query: x"))
    back = pickle.loads(pickle.dumps(emb))
    assert back.prompts == emb.prompts and back.default_prompt_name == "q"
    np.testing.assert_array_equal(back.encode("x"), emb.encode("x"))
    # The folder's file is replaced whole, its default included.
    folder = prompt_folder(tmp_path, minilm_dir, {"prompts": {"a": "A "}, "default_prompt_name": "a"})
    over = rve.Embedder.from_pretrained(folder, prompts={"b": "B "})
    assert over.prompts == {"b": "B "} and over.default_prompt_name is None


def test_registry_prompts_of_a_known_model(tmp_path: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # bge-small-en-v1.5 declares its retrieval prompt in the registry. Its
    # files are not on PyPI: the MiniLM folder stands in for them here (no
    # digests are pinned for bge, so any BERT folder loads under its name).
    models = tmp_path / "models"
    link_model(minilm_dir, models / "bge-small-en-v1.5")
    monkeypatch.setenv("RUVECTOR_MODELS", str(models))
    emb = rve.Embedder.from_pretrained("bge-small-en-v1.5")
    assert emb.source == "env" and not emb.verified
    query = "Represent this sentence for searching relevant passages: "
    assert emb.prompts == {"query": query} and emb.default_prompt_name is None
    np.testing.assert_array_equal(emb.encode("ruvector", prompt_name="query"), emb.embed(query + "ruvector"))
    np.testing.assert_array_equal(emb.encode("ruvector"), emb.embed("ruvector"))


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ("not json", r"config_sentence_transformers.json is not valid JSON"),
        ([1, 2], r"must hold a JSON object, got list"),
        ({"prompts": {"q": 5}}, r"prompts\['q'\] must be a str, got int"),
        ({"prompts": ["q"]}, r"prompts must be a dict of prompt name -> prompt text, got list"),
        (
            {"prompts": {"q": "q: "}, "default_prompt_name": "p"},
            r"default_prompt_name 'p' is not one of its prompts \('q'\)",
        ),
    ],
)
def test_bad_prompts_file_is_named(tmp_path: Path, minilm_dir: Path, config: Any, pattern: str) -> None:
    folder = link_model(minilm_dir, tmp_path / "bad")
    data = config.encode() if isinstance(config, str) else json_bytes(config)
    (folder / "config_sentence_transformers.json").unlink()
    (folder / "config_sentence_transformers.json").write_bytes(data)
    with pytest.raises(rve.EmbedError, match=pattern):
        rve.Embedder.from_pretrained(folder)


def test_bad_prompt_arguments(minilm: rve.Embedder, minilm_dir: Path) -> None:
    with pytest.raises(rve.InvalidArgument, match=r"unknown prompt_name 'query': the model's prompts are none"):
        minilm.encode("x", prompt_name="query")
    with pytest.raises(rve.InvalidArgument, match=r"prompt must be a str, got int"):
        minilm.encode("x", prompt=3)  # type: ignore[call-overload]
    with pytest.raises(rve.InvalidArgument, match=r"prompt holds a lone surrogate U\+D800 at index 1"):
        minilm.encode("x", prompt="q\ud800")
    with pytest.raises(
        rve.InvalidArgument, match=r"default_prompt_name must be one of the model's prompts \('q'\), got 'p'"
    ):
        rve.Embedder.from_pretrained(minilm_dir, prompts={"q": "q: "}, default_prompt_name="p")
    with pytest.raises(rve.InvalidArgument, match=r"prompts must be a dict of prompt name -> prompt text, got list"):
        rve.Embedder.from_pretrained(minilm_dir, prompts=["q"])  # type: ignore[call-overload]
    with pytest.raises(
        rve.InvalidArgument,
        match=r"pooling, max_seq_length, prompts and default_prompt_name apply to text models; mobilenetv3-small is an",
    ):
        rve.Embedder.from_pretrained("mobilenetv3-small", prompts={"q": "q"})


# -- progress bar ---------------------------------------------------------------------


def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes ``import tqdm`` fail, as where it is not installed."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_builtin_progress_bar(
    minilm: rve.Embedder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_tqdm(monkeypatch)
    texts = [f"text {i}" for i in range(10)]
    out = minilm.encode(texts, batch_size=3, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Encoding: 100.0% 10/10 sentences" in err and err.endswith("\n"), repr(err)
    np.testing.assert_array_equal(out, minilm.embed_batch(texts))
    # A generator has no length: a count without a percentage.
    minilm.encode((t for t in texts), batch_size=4, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Encoding: 10 sentences" in err and "%" not in err, repr(err)
    for flag in (False, None):  # None: stderr is not a terminal under pytest
        minilm.encode(texts, show_progress_bar=flag)
        captured = capsys.readouterr()
        assert captured.err == "" and captured.out == ""


def test_tqdm_progress_bar(minilm: rve.Embedder, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    texts = [f"text {i}" for i in range(10)]
    minilm.encode(texts, batch_size=3, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "Encoding" in err and "10/10" in err, repr(err)
    minilm.encode(texts, batch_size=3, show_progress_bar=False)
    assert capsys.readouterr().err == ""


#: Encodes two texts with the default show_progress_bar; argv[1]: model folder.
DEFAULT_PROGRESS = r"""
import sys
import ruvector_embed as rve
sys.modules["tqdm"] = None  # the built-in bar, whatever is installed
emb = rve.Embedder.from_pretrained(sys.argv[1])
emb.encode(["a", "b"])
print("DONE")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminal")
def test_default_progress_bar_only_on_a_terminal(minilm_dir: Path) -> None:
    import pty
    import subprocess

    from embed_helpers import child_env

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", DEFAULT_PROGRESS, str(minilm_dir)],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=child_env(),
            timeout=120,
        )
        os.close(slave)
        slave = -1
        chunks: List[bytes] = []
        while True:
            try:
                block = os.read(master, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not block:
                break
            chunks.append(block)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0 and b"DONE" in proc.stdout
    assert b"Encoding: 100.0% 2/2 sentences" in b"".join(chunks)
    # The same child with stderr a pipe: no bar.
    piped = run_child(DEFAULT_PROGRESS, str(minilm_dir))
    assert piped.returncode == 0 and "Encoding" not in piped.stderr, piped.stderr


# -- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (0, r"batch_size must be an int between 1 and 1048576, got 0"),
        (-5, r"batch_size must be an int between 1 and 1048576, got -5"),
        (2**20 + 1, r"got 1048577"),
        (1.5, r"batch_size must be an int between 1 and 1048576, got float 1.5"),
        ("32", r"got str '32'"),
        (True, r"got bool True"),
        (None, r"got NoneType None"),
    ],
)
def test_batch_size_is_checked(minilm: rve.Embedder, value: object, pattern: str) -> None:
    with pytest.raises(rve.InvalidArgument, match=pattern):
        minilm.encode(TEXTS, batch_size=value)  # type: ignore[call-overload]


def test_numpy_integer_batch_size(minilm: rve.Embedder) -> None:
    np.testing.assert_array_equal(minilm.encode(TEXTS, batch_size=np.int64(2)), minilm.embed_batch(TEXTS))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"show_progress_bar": "yes"}, r"show_progress_bar must be True, False or None, got str 'yes'"),
        ({"normalize_embeddings": 1}, r"normalize_embeddings must be True, False or None, got int 1"),
        ({"convert_to_numpy": None}, r"convert_to_numpy must be True or False, got NoneType"),
        ({"convert_to_tensor": True}, r"convert_to_tensor=True needs PyTorch"),
        ({"device": "cuda"}, r"device must be 'cpu', got 'cuda': ruvector-embed computes on the CPU"),
        ({"precision": "int8"}, r"precision must be 'float32', got 'int8'"),
        ({"output_value": "token_embeddings"}, r"output_value must be 'sentence_embedding'"),
    ],
)
def test_other_arguments_are_checked(minilm: rve.Embedder, kwargs: Any, pattern: str) -> None:
    with pytest.raises(rve.InvalidArgument, match=pattern):
        minilm.encode(TEXTS, **kwargs)


def test_bad_sentences_are_named(minilm: rve.Embedder) -> None:
    with pytest.raises(rve.InvalidArgument, match=r"sentences must be a str or an iterable of str, got int"):
        minilm.encode(5)  # type: ignore[call-overload]
    with pytest.raises(rve.InvalidArgument, match=r"got bytes; decode it first"):
        minilm.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(rve.InvalidArgument, match=r"got dict; pass its values\(\) or keys\(\)"):
        minilm.encode({"a": "b"})
    texts: List[Any] = [f"t{i}" for i in range(50)]
    texts[40] = 7
    with pytest.raises(rve.InvalidArgument, match=r"sentences\[40\] must be a str, got int"):
        minilm.encode(texts, batch_size=32)
    texts[40] = "bad \ud800 text"
    with pytest.raises(rve.InvalidArgument, match=r"sentences\[40\] holds a lone surrogate"):
        minilm.encode(texts, batch_size=32)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'normalise'"):
        minilm.encode(TEXTS, normalise=True)  # type: ignore[call-overload]


# -- threads ---------------------------------------------------------------------------


def test_encode_runs_on_the_pool_set_by_set_num_threads(minilm: rve.Embedder) -> None:
    before = rve.get_num_threads()
    want = minilm.embed_batch(TEXTS)
    try:
        for n in (1, 2):
            rve.set_num_threads(n)
            np.testing.assert_array_equal(minilm.encode(TEXTS, batch_size=2), want)
            assert rve.runtime_info()["pool_threads"] == n
    finally:
        rve.set_num_threads(before)


# -- streaming with bounded memory ----------------------------------------------------------


class Counted(str):
    """A str that counts how many of its kind are alive."""

    alive = 0

    def __new__(cls, value: str) -> Counted:
        obj = super().__new__(cls, value)
        Counted.alive += 1
        return obj

    def __del__(self) -> None:
        Counted.alive -= 1


def test_generator_streams_with_bounded_memory(tiny: rve.Embedder) -> None:
    n, batch, text_len = 10_000, 64, 1000
    most_alive = 0

    def texts() -> Iterator[str]:
        nonlocal most_alive
        for i in range(n):
            most_alive = max(most_alive, Counted.alive)
            yield Counted(f"{i} " + "x" * text_len)

    one_text = sys.getsizeof("x" * (text_len + 6))
    all_texts_twice = 2 * n * one_text  # ~20 MB
    tracemalloc.start()
    try:
        out = tiny.encode(texts(), batch_size=batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (n, 384) and out.dtype == np.float32
    # Never more than one batch of texts alive at once...
    assert most_alive <= batch + 1, most_alive
    assert Counted.alive == 0
    # ...and the peak is the output (grown an eighth at a time) plus that
    # batch: far below what holding every text, let alone twice, would take.
    over = peak - out.nbytes
    assert over < out.nbytes // 8 + 2 * batch * one_text + (1 << 20), (peak, out.nbytes)
    assert over < all_texts_twice // 5, (over, all_texts_twice)
    # The same values as in one call.
    probe = [f"{i} " + "x" * text_len for i in (0, 4321, n - 1)]
    np.testing.assert_array_equal(out[[0, 4321, n - 1]], tiny.embed_batch(probe))


def test_known_length_is_allocated_once(tiny: rve.Embedder) -> None:
    texts = [f"{i} short text" for i in range(5000)]
    tracemalloc.start()
    try:
        out = tiny.encode(texts, batch_size=128)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (5000, 384)
    assert peak - out.nbytes < (1 << 20), (peak, out.nbytes)


def test_rows_can_be_kept_as_a_list(tiny: rve.Embedder) -> None:
    rows = tiny.encode((f"t{i}" for i in range(300)), batch_size=64, convert_to_numpy=False)
    assert len(rows) == 300 and all(r.shape == (384,) for r in rows)
    np.testing.assert_array_equal(np.stack(rows), tiny.embed_batch([f"t{i}" for i in range(300)]))


# -- Ctrl-C between and within batches -------------------------------------------------------

#: argv[1]: model folder. SIGINT 0.5 s into an encode() of a long generator.
INTERRUPTED_ENCODE = r"""
import os, signal, sys, threading, time
# Ctrl-C raises KeyboardInterrupt here even when the test run started with
# SIGINT ignored (a background job of a non-interactive shell): a child
# inherits an ignored SIGINT, and Python then installs no handler for it.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
import ruvector_embed as rve

emb = rve.Embedder.from_pretrained(sys.argv[1])
seen = 0
def texts():
    global seen
    for i in range(1_000_000):
        seen = i
        yield ("token " * 60) + str(i)

def fire():
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=fire, daemon=True).start()
t0 = time.monotonic()
try:
    emb.encode(texts(), batch_size=16)
    print("FINISHED")
except KeyboardInterrupt:
    print("INTERRUPTED", time.monotonic() - t0, seen)
small = emb.encode(["after", "the interrupt"])
assert np.array_equal(small, emb.embed_batch(["after", "the interrupt"]))
print("AFTER-OK")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_encode(minilm_dir: Path) -> None:
    out = run_child(INTERRUPTED_ENCODE, str(minilm_dir), timeout=300)
    lines = out.stdout.split()
    assert lines and lines[0] == "INTERRUPTED", out.stdout + out.stderr[-3000:]
    assert float(lines[1]) < 3.0, out.stdout
    assert int(lines[2]) < 1_000_000 - 1  # stopped early, not at the end
    assert "AFTER-OK" in out.stdout, out.stdout + out.stderr[-3000:]
