"""The ``ruvector`` command.

Every command imports what it needs inside its own function, so
``ruvector --help`` loads only :mod:`argparse` (no numpy, no component).

Exit codes: 0 success; 1 the operation failed (bad data, unknown
collection, I/O); 2 bad usage (unknown option, bad JSON argument); 3 an
optional component is missing (the message names the extra to install);
130 interrupted. Errors go to stderr as ``ruvector: error: ...``; with
``--json`` the result on stdout is one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

if TYPE_CHECKING:
    import numpy.typing as npt

    from ruvector.collection import Collection

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """A bad argument value (exit code 2)."""


# -- output -------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def _progress(total: int, label: str, enabled: bool) -> Callable[[int], None]:
    """A progress bar on stderr (only on a terminal); call it with the count done."""
    if not enabled or total <= 0 or not sys.stderr.isatty():
        return lambda done: None
    start = time.monotonic()

    def update(done: int) -> None:
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.monotonic() - start, 1e-9)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s){end}")
        sys.stderr.flush()

    return update


def _json_arg(text: Optional[str], name: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"{name} is not valid JSON: {error}") from None


# -- collections --------------------------------------------------------------------------


def _is_legacy(path: str) -> bool:
    return not os.path.isdir(path) and os.path.isfile(path + ".meta.json")


def _open(path: str, **options: Any) -> Collection:
    """A collection directory, or a 0.1.4 file pair read into memory."""
    from ruvector.collection import Collection

    if _is_legacy(path):
        return Collection.load(path)
    return Collection.open(path, create=False, **options)


def _finish(coll: Collection, path: str) -> None:
    """Closes a directory collection; writes a 0.1.4 file pair back."""
    if coll.path is None:
        coll.save(path)
    coll.close()


def _convert_ids(coll: Collection, raw: Sequence[str]) -> List[Any]:
    kind = coll.describe().get("id_kind")
    if kind == "int":
        try:
            return [int(x) for x in raw]
        except ValueError:
            raise UsageError(f"this collection has integer ids, got {list(raw)!r}") from None
    return list(raw)


# -- commands -----------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> Any:
    from ruvector.collection import Collection

    if os.path.exists(os.path.join(args.path, "ruvector.sqlite")) or _is_legacy(args.path):
        raise FileExistsError(f"{args.path} already exists")
    params: Dict[str, Any] = _json_arg(args.index_params, "--index-params") or {}
    if args.index in ("rabitq_plus", "rabitq_asym", "ivf"):
        params.setdefault("rerank_factor", args.rerank_factor)
        params.setdefault("seed", args.seed)
    embedder = None if args.embedder == "none" else args.embedder
    with Collection.open(
        args.path, dim=args.dim, metric=args.metric, index=args.index, index_params=params, embedder=embedder
    ) as coll:
        info = coll.describe()
    return info, f"created empty collection dim={args.dim} at {args.path}"


def _load_rows(vectors_path: str, metadata_path: Optional[str]) -> Any:
    import numpy as np

    from ruvector._where import as_list

    vectors = np.load(vectors_path, allow_pickle=False)
    metadatas = None
    if metadata_path:
        with open(metadata_path, encoding="utf-8") as handle:
            metadatas = as_list(json.load(handle))
        if metadatas is None or len(metadatas) != len(vectors):
            raise UsageError(f"{metadata_path} must hold a JSON list of {len(vectors)} objects (one per row)")
    return vectors, metadatas


def cmd_insert_batch(args: argparse.Namespace) -> Any:
    vectors, metadatas = _load_rows(args.vectors, args.metadata)
    coll = _open(args.path, embedder=None)
    try:
        ids = coll.insert_batch(vectors, metadatas=metadatas)
        count = coll.count()
    finally:
        _finish(coll, args.path)
    span = f" (ids {ids[0]}..{ids[-1]})" if ids else ""
    return {"ids": ids, "count": count}, f"inserted {len(ids)} vectors{span}; collection now has {count} rows"


def _hits_out(hits: Sequence[Any], with_text: bool) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for h in hits:
        row = {"id": h.id, "score": h.score, "metadata": h.metadata}
        if with_text:
            row["text"] = h.text
        rows.append(row)
    return rows


def _hits_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = [f"{'id':>12}  {'score':>9}  text / metadata"]
    for row in rows:
        extra = row.get("text") or ""
        meta = json.dumps(row["metadata"], ensure_ascii=False) if row["metadata"] else ""
        shown = (extra + ("  " if extra and meta else "") + meta).replace("\n", " ")
        if len(shown) > 90:
            shown = shown[:87] + "..."
        lines.append(f"{row['id']!s:>12}  {row['score']:>9.4f}  {shown}")
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace) -> Any:
    import numpy as np

    query = np.load(args.query, allow_pickle=False)
    where = _json_arg(args.filter, "--filter")
    coll = _open(args.path, embedder=None)
    try:
        if query.ndim == 2 and len(query) == 1:
            query = query[0]
        hits = coll.search(query, args.k, filter=where, rerank_factor=args.rerank_factor)
    finally:
        coll.close()
    rows = _hits_out(hits, with_text=False)
    return rows, _hits_table(rows)


def cmd_delete(args: argparse.Namespace) -> Any:
    where = _json_arg(args.where, "--where")
    if not args.ids and where is None:
        raise UsageError("give --id (repeatable) or --where")
    coll = _open(args.path, embedder=None)
    try:
        ids = _convert_ids(coll, args.ids) if args.ids else None
        missing = [] if ids is None else [i for i in dict.fromkeys(ids) if i not in coll]
        deleted = coll.delete(ids, where=where)
        count = coll.count()
    finally:
        _finish(coll, args.path)
    text = f"deleted {deleted} document(s); {count} left"
    if missing:
        text += f"; not found: {', '.join(map(str, missing))}"
    return {"deleted": deleted, "count": count, "missing": missing, "vacuumed": 0}, text


def cmd_export(args: argparse.Namespace) -> Any:
    import numpy as np

    from ruvector.collection import stack_vectors

    coll = _open(args.path, embedder=None)
    try:
        records = coll.get(include_vectors=True)
    finally:
        coll.close()
    if not records:
        raise LookupError("collection is empty, nothing to export")
    np.save(args.out + ".npy", stack_vectors(records, coll.dim or 1))
    with open(args.out + ".meta.json", "w", encoding="utf-8") as handle:
        json.dump([r.metadata or None for r in records], handle)
    with open(args.out + ".docs.jsonl", "w", encoding="utf-8") as handle:
        for r in records:
            handle.write(json.dumps({"id": r.id, "text": r.text, "metadata": r.metadata}, ensure_ascii=False) + "\n")
    files = [args.out + s for s in (".npy", ".meta.json", ".docs.jsonl")]
    return {"exported": len(records), "files": files}, f"exported {len(records)} documents to {', '.join(files)}"


def _read_docs(path: str) -> List[Dict[str, Any]]:
    from ruvector._where import as_mapping

    docs: List[Dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    doc = json.loads(line)
                except ValueError as error:
                    raise UsageError(f"{path}:{number}: not JSON: {error}") from None
                fields = as_mapping(doc)
                if fields is None:
                    raise UsageError(f"{path}:{number}: expected a JSON object")
                docs.append({str(key): value for key, value in fields.items()})  # JSON keys are strings
    return docs


def cmd_import(args: argparse.Namespace) -> Any:
    from ruvector.collection import Collection

    vectors, metadatas = _load_rows(args.vectors, args.metadata)
    texts = ids = None
    if args.docs:
        docs = _read_docs(args.docs)
        if len(docs) != len(vectors):
            raise UsageError(f"{args.docs} has {len(docs)} lines for {len(vectors)} vectors")
        texts = [d.get("text") for d in docs]
        ids = [d["id"] for d in docs] if all("id" in d for d in docs) else None
        if metadatas is None:
            metadatas = [d.get("metadata") for d in docs]
    params = {"rerank_factor": args.rerank_factor, "seed": args.seed} if args.index == "rabitq_plus" else {}
    embedder = None if args.embedder == "none" else args.embedder
    coll = Collection.open(args.path, metric=args.metric, index=args.index, index_params=params, embedder=embedder)
    try:
        if coll.count():
            raise FileExistsError(f"{args.path} already holds documents; use insert-batch or add")
        if sys.stderr.isatty() and not args.json:
            sys.stderr.write(f"building collection from {len(vectors)} vectors...\n")
        coll.add(texts, ids=ids, metadata=metadatas, vectors=vectors)
        count = coll.count()
    finally:
        coll.close()
    return {"count": count, "path": args.path}, f"built collection with {count} vectors at {args.path}"


def cmd_info(args: argparse.Namespace) -> Any:
    coll = _open(args.path, embedder=None, read_only=not _is_legacy(args.path))
    try:
        info = coll.describe()
    finally:
        coll.close()
    text = "\n".join(f"{key:>14}  {value}" for key, value in info.items())
    return info, text


def _text_batches(texts: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def cmd_add(args: argparse.Namespace) -> Any:
    import numpy as np

    from ruvector.collection import Collection

    texts: List[Optional[str]] = list(args.texts)
    metadatas: List[Any] = []
    ids: Optional[List[Any]] = None
    if args.file:
        if args.file.endswith(".jsonl"):
            docs = _read_docs(args.file)
            texts += [d.get("text") for d in docs]
            metadatas = [d.get("metadata") for d in docs]
            if docs and all("id" in d for d in docs):
                ids = [d["id"] for d in docs]
        else:
            with open(args.file, encoding="utf-8") as handle:
                texts += [line.rstrip("\n") for line in handle if line.strip()]
    if not texts:
        raise UsageError("give texts as arguments or --file")
    given = _json_arg(args.metadata, "--metadata")
    meta: Optional[Dict[str, Any]] = given
    if given is not None and not isinstance(given, dict):
        raise UsageError("--metadata must be a JSON object (applied to every text)")
    if not metadatas:
        metadatas = [dict(meta or {}) for _ in texts]
    elif meta:
        metadatas = [{**meta, **(m or {})} for m in metadatas]
    if args.id:
        if len(args.id) != len(texts) or ids is not None:
            raise UsageError(f"give one --id per text ({len(texts)}), or none")
        ids = list(args.id)
    options: Dict[str, Any] = {}
    if args.embedder:
        options["embedder"] = args.embedder
    coll = Collection.open(args.path, **options)
    try:
        if ids is not None and coll.describe().get("id_kind") == "int":
            ids = _convert_ids(coll, [str(i) for i in ids])
        # Embedded in batches for the progress bar; added in one transaction.
        show = _progress(len(texts), "embedding", not args.json)
        parts: List[npt.NDArray[np.float32]] = []
        done = 0
        for batch in _text_batches([t or "" for t in texts], 256):
            parts.append(coll.embed(batch))
            done += len(batch)
            show(done)
        vectors = np.concatenate(parts)
        method = coll.upsert if args.upsert else coll.add
        added = method(texts, ids=ids, metadata=metadatas, vectors=vectors)
        count = coll.count()
    finally:
        coll.close()
    return {"ids": added, "count": count}, f"added {len(added)} document(s); collection now has {count}"


def cmd_query(args: argparse.Namespace) -> Any:
    where = _json_arg(args.where, "--where")
    options: Dict[str, Any] = {"read_only": True}
    if args.embedder:
        options["embedder"] = args.embedder
    coll = _open(args.path, **options)
    try:
        hits = coll.query(args.text[0] if len(args.text) == 1 else list(args.text), k=args.k, where=where)
    finally:
        coll.close()
    if len(args.text) == 1:
        rows = _hits_out(hits, with_text=True)
        return rows, _hits_table(rows)
    batches = [_hits_out(row, with_text=True) for row in hits]
    return batches, "\n\n".join(f"{t}\n{_hits_table(b)}" for t, b in zip(args.text, batches))


def cmd_get(args: argparse.Namespace) -> Any:
    where = _json_arg(args.where, "--where")
    coll = _open(args.path, embedder=None, read_only=not _is_legacy(args.path))
    try:
        ids = _convert_ids(coll, args.ids) if args.ids else None
        records = coll.get(ids, where=where, limit=args.limit)
    finally:
        coll.close()
    rows = [{"id": r.id, "text": r.text, "metadata": r.metadata} for r in records]
    return rows, "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)


def cmd_embed(args: argparse.Namespace) -> Any:
    import importlib

    import numpy as np

    from ruvector_common.errors import MissingComponentError

    try:
        embed = importlib.import_module("ruvector_embed")
    except ModuleNotFoundError as error:
        raise MissingComponentError("ruvector embed", "embed", "ruvector-embed", "ruvector_embed") from error
    texts = list(args.texts)
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            texts += [line.rstrip("\n") for line in handle if line.strip()]
    if not texts:
        raise UsageError("give texts as arguments or --file")
    model = embed.Embedder.from_pretrained(args.model)
    show = _progress(len(texts), "embedding", not args.json)
    parts: List[npt.NDArray[np.float32]] = []
    for batch in _text_batches(texts, 256):
        parts.append(model.embed_batch(list(batch)))
        show(sum(len(p) for p in parts))
    vectors = np.concatenate(parts)
    if args.out:
        np.save(args.out, vectors)
        return {"shape": list(vectors.shape), "out": args.out}, f"wrote {vectors.shape} float32 to {args.out}"
    return {"model": model.name, "dim": int(vectors.shape[1]), "vectors": vectors.tolist()}, "\n".join(
        " ".join(f"{x:.6f}" for x in row) for row in vectors
    )


def cmd_benchmark(args: argparse.Namespace) -> Any:
    import tempfile

    import numpy as np

    from ruvector.collection import Collection, single_hits

    if min(args.n, args.dim, args.k, args.queries, args.recall_k) < 1:
        raise UsageError("-n, --dim, --k, --queries and --recall-k must all be >= 1")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        coll = Collection.open(os.path.join(tmp, "bench"), embedder=None, metric="l2")
        coll.add(vectors=vectors)
        build = time.perf_counter() - t0
        latencies: List[float] = []
        show = _progress(args.queries, "querying", not args.json)
        found: List[List[Any]] = []
        for i, q in enumerate(queries):
            t0 = time.perf_counter()
            hits = single_hits(coll.query(np.asarray(q, dtype=np.float32), k=max(args.k, args.recall_k)))
            latencies.append(time.perf_counter() - t0)
            found.append([h.id for h in hits[: args.recall_k]])
            show(i + 1)
        index = coll.index_kind
        coll.close()
    distances = (vectors * vectors).sum(1)[None, :] - 2 * queries @ vectors.T
    truth = np.argsort(distances, axis=1, kind="stable")[:, : args.recall_k]
    recall = float(np.mean([len(set(f) & set(t.tolist())) / args.recall_k for f, t in zip(found, truth)]))
    latencies.sort()
    result = {
        "n": args.n,
        "dim": args.dim,
        "k": args.k,
        "queries": args.queries,
        "index": index,
        f"recall_at_{args.recall_k}": recall,
        "build_seconds": build,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "qps": len(latencies) / sum(latencies),
    }
    text = (
        f"n={args.n} dim={args.dim} index={index} build={build:.3f}s p50={result['p50_ms']:.3f}ms "
        f"p99={result['p99_ms']:.3f}ms qps={result['qps']:.0f} recall@{args.recall_k}={recall:.4f}"
    )
    return result, text


def cmd_serve(args: argparse.Namespace) -> Any:
    from ruvector.mcp_server import serve

    serve(
        data_dir=args.data_dir,
        http=args.http,
        host=args.host,
        port=args.port,
        read_only=args.read_only,
        token_env=args.token_env,
    )
    return None, None


# -- the parser ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ruvector",
        description="RuVector: vector search collections from the shell (documents, metadata, vectors).",
        epilog="exit codes: 0 ok, 1 failed, 2 bad usage, 3 optional component missing, 130 interrupted",
    )
    parser.add_argument("--version", action="store_true", help="print the installed versions and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, fn: Callable[[argparse.Namespace], Any]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=fn)
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        return sub

    def path(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--path", required=True, help="collection directory (or a ruvector 0.1.4 file with PATH.meta.json)"
        )

    sub = command("create", "create an empty collection", cmd_create)
    path(sub)
    sub.add_argument("--dim", type=int, help="vector dimension (default: from the first vectors)")
    sub.add_argument("--metric", choices=["cosine", "l2", "ip"], default="cosine")
    sub.add_argument("--index", default="auto", help="auto, flat, ivf, rabitq, rabitq_plus, rabitq_asym")
    sub.add_argument("--index-params", help="JSON object of index options (nlist, nprobe, rerank_factor, ...)")
    sub.add_argument("--embedder", default="all-MiniLM-L6-v2", help="model name, or 'none' for vectors only")
    sub.add_argument("--rerank-factor", type=int, default=20, help="for rabitq_plus/rabitq_asym/ivf")
    sub.add_argument("--seed", type=int, default=42)

    sub = command("insert-batch", "insert the rows of a .npy file (ids continue after the largest)", cmd_insert_batch)
    path(sub)
    sub.add_argument("--vectors", required=True, help=".npy file, shape (n, dim)")
    sub.add_argument("--metadata", help=".json file: a list of objects, one per row")

    sub = command("search", "the k nearest neighbours of a query vector (.npy)", cmd_search)
    path(sub)
    sub.add_argument("--query", required=True, help=".npy file holding one (dim,) vector")
    sub.add_argument("-k", type=int, default=10)
    sub.add_argument("--filter", "--where", dest="filter", help='where filter as JSON, e.g. \'{"lang": "en"}\'')
    sub.add_argument("--rerank-factor", type=int)
    sub.add_argument("--no-color", action="store_true", help="accepted for 0.1.4 scripts (output has no color)")

    sub = command("delete", "delete documents by id and/or where", cmd_delete)
    path(sub)
    sub.add_argument("--id", dest="ids", action="append", default=[], help="repeatable")
    sub.add_argument("--where", help="where filter as JSON")
    sub.add_argument("--vacuum", action="store_true", help="accepted for 0.1.4 scripts (deletes are immediate)")

    sub = command("export", "write vectors (.npy), metadata (.meta.json) and documents (.docs.jsonl)", cmd_export)
    path(sub)
    sub.add_argument("--out", required=True, help="prefix of the files written")

    sub = command("import", "build a new collection from a .npy file (and metadata/documents)", cmd_import)
    path(sub)
    sub.add_argument("--vectors", required=True)
    sub.add_argument("--metadata", help=".json list of objects, one per row")
    sub.add_argument("--docs", help=".jsonl with id/text/metadata per row (as export writes)")
    sub.add_argument("--metric", choices=["cosine", "l2", "ip"], default="cosine")
    sub.add_argument("--index", default="auto")
    sub.add_argument("--embedder", default="none", help="model name for later text queries, or 'none'")
    sub.add_argument("--rerank-factor", type=int, default=20)
    sub.add_argument("--seed", type=int, default=42)

    sub = command("info", "show a collection's counts and settings", cmd_info)
    path(sub)
    sub.add_argument("--no-color", action="store_true", help="accepted for 0.1.4 scripts")

    sub = command("add", "add texts (embedded) to a collection, creating it if needed", cmd_add)
    path(sub)
    sub.add_argument("texts", nargs="*", help="texts to add")
    sub.add_argument("--file", help="a text file (one document per line) or .jsonl (id/text/metadata)")
    sub.add_argument("--metadata", help="JSON object added to every document")
    sub.add_argument("--id", action="append", help="one per text (repeatable)")
    sub.add_argument("--upsert", action="store_true", help="replace documents whose ids exist")
    sub.add_argument("--embedder", help="model name (a new collection uses all-MiniLM-L6-v2)")

    sub = command("query", "the k documents nearest to a text", cmd_query)
    path(sub)
    sub.add_argument("text", nargs="+", help="one or more query texts")
    sub.add_argument("-k", type=int, default=5)
    sub.add_argument("--where", help="where filter as JSON")
    sub.add_argument("--embedder", help="model name, if the collection has none recorded")

    sub = command("get", "print stored documents", cmd_get)
    path(sub)
    sub.add_argument("--id", dest="ids", action="append", default=[], help="repeatable")
    sub.add_argument("--where", help="where filter as JSON")
    sub.add_argument("--limit", type=int)

    sub = command("embed", "embed texts with a sentence model", cmd_embed)
    sub.add_argument("texts", nargs="*")
    sub.add_argument("--file", help="one text per line")
    sub.add_argument("--model", default="all-MiniLM-L6-v2")
    sub.add_argument("--out", help="write a .npy file instead of printing")

    sub = command("benchmark", "in-process build and query benchmark on random vectors", cmd_benchmark)
    sub.add_argument("-n", type=int, default=10_000)
    sub.add_argument("--dim", type=int, default=128)
    sub.add_argument("-k", "--k", dest="k", type=int, default=10)
    sub.add_argument("--queries", type=int, default=100)
    sub.add_argument("--recall-k", type=int, default=10)
    sub.add_argument("--rerank-factor", type=int, default=20, help="accepted for 0.1.4 scripts")
    sub.add_argument("--backend", default="auto", help="accepted for 0.1.4 scripts")

    sub = command("serve", "run the MCP server (stdio, or streamable HTTP with --http)", cmd_serve)
    sub.add_argument("--data-dir", help="where collections live (default $RUVECTOR_MCP_DATA_DIR or ~/.ruvector/mcp)")
    sub.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=8420)
    sub.add_argument("--read-only", action="store_true", help="offer no tool that writes")
    sub.add_argument(
        "--token-env", default="RUVECTOR_MCP_TOKEN", help="environment variable holding the HTTP bearer token"
    )
    sub.add_argument("--max-vectors", type=int, help="accepted for 0.1.4 scripts")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command; returns the exit code (the console script exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        import ruvector

        _print_json(ruvector.versions())
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from ruvector_common.errors import MissingComponentError, RuVectorError

    try:
        result, text = args.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("ruvector: interrupted\n")
        return EXIT_INTERRUPTED
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"ruvector {args.command}: error: {error}\n")
    except MissingComponentError as error:
        sys.stderr.write(f"ruvector: error: {error}\n")
        return EXIT_MISSING
    except (RuVectorError, OSError, LookupError, ValueError) as error:
        sys.stderr.write(f"ruvector: error: {error}\n")
        return EXIT_FAILED
    if result is not None:
        if args.json:
            _print_json(result)
        elif text:
            sys.stdout.write(text + "\n")
    return EXIT_OK


def entry_point() -> None:
    """The ``ruvector`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
