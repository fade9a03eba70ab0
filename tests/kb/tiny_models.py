"""A tiny randomly initialised sentence-transformers model (BERT, 32-d), built once per session from a config.

It stands for "another embedding model" in tests: its vectors differ from the bundled MiniLM's in
values and in dimension (32 vs 384), so any mix-up of the two models shows.
"""

from __future__ import annotations

from pathlib import Path

DIMENSION = 32


def tiny_model_dir(root: Path, *, seed: int = 0) -> Path:
    """Write the tiny model under ``root`` (the bundled model's tokenizer, a 1-layer BERT) and return its folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kb.embedding import resolve_embedding_model

    out = root / f"tiny-st-{seed}"
    if (out / "config.json").is_file():
        return out
    raw = root / f"tiny-bert-{seed}"
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_embedding_model("all-minilm-l6-v2")))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=DIMENSION, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(raw))
    tokenizer.save_pretrained(str(raw))
    transformer = Transformer(str(raw), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(DIMENSION, "mean")], device="cpu").save(str(out))
    return out
