"""The embedder: its dtype setting and the vectors it returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kefu.compute import cpu_has_fast_bf16
from kefu.config import ConfigError

TEXTS = ["How do I reset my password?", "Opening hours are nine to five.", "退货需要在三十天内完成。", "ok"]


def test_auto_dtype_is_bf16_exactly_when_the_cpu_has_native_bf16(settings):
    from kb.embedding import embedding_dtype

    settings.KEFU_EMBEDDING_DTYPE = "auto"
    assert embedding_dtype() == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    settings.KEFU_EMBEDDING_DTYPE = "float32"
    assert embedding_dtype() == torch.float32


def test_an_unknown_dtype_is_a_config_error(settings):
    from kb.embedding import embedding_dtype

    settings.KEFU_EMBEDDING_DTYPE = "int4"
    with pytest.raises(ConfigError, match="KEFU_EMBEDDING_DTYPE='int4'"):
        embedding_dtype()


def test_vectors_are_float32_and_unit_length_whatever_the_model_dtype(embedder):
    from kb.embedding import embed_texts

    vectors = embed_texts(TEXTS, batch_size=3)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bf16_vectors_point_where_fp32_vectors_point(embedder):
    # given the same model loaded in float32 and in bf16
    from sentence_transformers import SentenceTransformer

    from kb.embedding import resolve_embedding_model

    path = str(resolve_embedding_model("all-minilm-l6-v2"))
    fp32 = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.float32})
    bf16 = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.bfloat16})
    # when both embed the same texts
    a = fp32.encode(TEXTS, normalize_embeddings=True)
    b = bf16.encode(TEXTS, normalize_embeddings=True).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    # then each pair is nearly parallel, and the nearest neighbours agree
    assert (a * b).sum(axis=1).min() > 0.99
    assert ((a @ a.T).argsort(axis=1) == (b @ b.T).argsort(axis=1))[:, -2:].all()
