# type: ignore
"""Builds the small random-weight sentence-transformers models of
``test_embed_dense.py`` and their reference embeddings.

Needs PyTorch, ``transformers``, ``tokenizers`` and ``sentence-transformers``
(the tests do not):

    python tests/embed/data/dense-reference/make_dense_reference.py

Each folder is a small BERT (the shape of ``make_arch_reference.py``'s
``SMALL_ENCODER``, its WordPiece tokenizer) assembled from
sentence-transformers' own modules and saved by ``SentenceTransformer.save``:

* ``lasttoken-dense``: Transformer, Pooling (last token), Dense (Tanh, to 24),
  Dense (Identity, no bias, to 16), Normalize;
* ``mean-dense``: Transformer, Pooling (mean), Dense (Tanh, to 48), no Normalize.

``reference.npz`` holds ``SentenceTransformer(folder).encode`` of the texts
in ``reference.json`` (one of them longer than ``max_seq_length``, so the last
kept token is the one truncation leaves).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "arch-reference"))
from make_arch_reference import LONG, SEED, SENTENCES, SMALL_ENCODER, mpnet_tokenizer, scramble  # noqa: E402

MAX_SEQ_LENGTH = 64


def seeded(module: torch.nn.Module, seed: int) -> None:
    """Seeded weights for a Dense layer, large enough to move the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def build(name: str, pooling: str, dense: list, normalize: bool) -> None:
    tok = mpnet_tokenizer()
    cfg = BertConfig(
        vocab_size=tok.get_vocab_size(),
        **SMALL_ENCODER,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=1,
        layer_norm_eps=1e-12,
    )
    bert = BertModel(cfg, add_pooling_layer=False)
    scramble(bert)
    out = HERE / name
    with tempfile.TemporaryDirectory() as tmp:
        bert.save_pretrained(tmp, safe_serialization=True)
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", cls_token="<s>", sep_token="</s>"
        )
        fast.save_pretrained(tmp)
        modules = [Transformer(tmp, max_seq_length=MAX_SEQ_LENGTH)]
        width = cfg.hidden_size
        modules.append(Pooling(width, pooling_mode=pooling))
        for k, (out_features, bias, act) in enumerate(dense):
            d = Dense(width, out_features, bias=bias, activation_function=act)
            seeded(d, SEED + k)
            modules.append(d)
            width = out_features
        if normalize:
            modules.append(Normalize())
        SentenceTransformer(modules=modules, device="cpu").save(str(out))
    # The generated model card is not needed by either side.
    (out / "README.md").unlink()
    texts = [*SENTENCES, LONG]
    model = SentenceTransformer(str(out), device="cpu")
    emb = model.encode(texts, batch_size=4, convert_to_numpy=True)
    one = np.stack([model.encode(t, convert_to_numpy=True) for t in texts])
    np.testing.assert_allclose(emb, one, atol=1e-5)
    ids = [model.tokenizer(t, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"] for t in texts]
    assert len(ids[-1]) == MAX_SEQ_LENGTH, "the long text must be truncated"
    np.savez(out / "reference.npz", embeddings=emb.astype(np.float32))
    meta = {"texts": texts, "dim": int(emb.shape[1]), "max_seq_length": MAX_SEQ_LENGTH, "ids": ids}
    (out / "reference.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))


def main() -> None:
    torch.manual_seed(SEED)
    build(
        "lasttoken-dense",
        "lasttoken",
        [(24, True, torch.nn.Tanh()), (16, False, torch.nn.Identity())],
        normalize=True,
    )
    build("mean-dense", "mean", [(48, True, torch.nn.Tanh())], normalize=False)


if __name__ == "__main__":
    main()
