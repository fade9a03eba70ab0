"""A tiny randomly initialised sentence-transformers model (BERT, 32-d), built once per session from a config.

It stands for "another embedding model" in tests: its vectors differ from the bundled MiniLM's in
values and in dimension (32 vs 384), so any mix-up of the two models shows.
"""

from __future__ import annotations

from pathlib import Path

DIMENSION = 32


def tiny_model_dir(root: Path, *, seed: int = 0, layers: int = 1, architecture: str = "bert") -> Path:
    """Write the tiny model under ``root`` (the bundled model's tokenizer, a ``layers``-layer BERT, or MPNet — whose
    layers return tuples, as all-mpnet-base-v2's do) and return its folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel, MPNetConfig, MPNetModel

    from kb.embedding import resolve_embedding_model

    kinds = {"bert": (BertConfig, BertModel), "mpnet": (MPNetConfig, MPNetModel)}
    suffix = "" if (layers, architecture) == (1, "bert") else f"-{architecture}{layers}"
    out = root / f"tiny-st-{seed}{suffix}"
    if (out / "config.json").is_file():
        return out
    raw = root / f"tiny-bert-{seed}{suffix}"
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_embedding_model("all-minilm-l6-v2")))
    torch.manual_seed(seed)
    config_class, model_class = kinds[architecture]
    config = config_class(vocab_size=tokenizer.vocab_size, hidden_size=DIMENSION, num_hidden_layers=layers,
                          num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    model_class(config).save_pretrained(str(raw))
    tokenizer.save_pretrained(str(raw))
    transformer = Transformer(str(raw), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(DIMENSION, "mean")], device="cpu").save(str(out))
    return out


def tiny_model_with_prompts(root: Path, prompts: dict[str, str], *, seed: int = 0) -> Path:
    """The tiny model of ``seed`` again, its config_sentence_transformers.json naming ``prompts`` (as e5's
    "query: " / "passage: " do): the same weights, so its vectors equal the plain model's of prefixed texts."""
    import json
    import shutil

    plain = tiny_model_dir(root, seed=seed)
    out = root / f"tiny-st-{seed}-prompts-{abs(hash(tuple(sorted(prompts.items())))) % 10**8}"
    if not (out / "config.json").is_file():
        shutil.copytree(plain, out)
        config_path = out / "config_sentence_transformers.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        config["prompts"] = prompts
        config_path.write_text(json.dumps(config, indent=1))
    return out
