"""Stage 3, intent: faq | knowledge | chitchat | handoff | out_of_scope, with a confidence.

An embedding classifier (all-MiniLM-L6-v2 vectors, nearest examples per label): the
examples are the labelled utterances shipped in ``chat/data/intents.jsonl`` (English
and Chinese) plus the knowledge base's own FAQ phrasings, labelled ``faq`` — their
vectors are read from the database, not recomputed. The classifier is rebuilt when
the base's index version changes. Explicit requests for a human ("talk to a person",
"转人工") always hand off, whatever the vectors say.

A label's score is the mean cosine of its ``TOP_N`` nearest examples; the confidence is
a softmax over label scores. The bundled embedder (all-MiniLM-L6-v2) was trained on
English, so for questions with Chinese characters the score adds, with weight
``CHAR_WEIGHT``, the same nearest-example measure over character uni+bigram vectors,
which carry most of the meaning of short Chinese utterances. ``python manage.py intent_eval`` measures it on
``chat/data/intents_heldout.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from kb import embedding  # embedding.embed_texts looked up per call: tests swap it for a cache
from kb.embedding import knowledge_base_model
from kb.models import FaqEntry, IndexVersion, KnowledgeBase
from kb.retrieval.headings import heading_examples

LABELS = ("faq", "knowledge", "chitchat", "handoff", "out_of_scope")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TRAIN_FILE = DATA_DIR / "intents.jsonl"
HELDOUT_FILE = DATA_DIR / "intents_heldout.jsonl"
TOP_N = 3
TEMPERATURE = 0.05  # cosine differences of a few hundredths are decisive for MiniLM
CHAR_WEIGHT = 1.0  # weight of the character n-gram score for questions containing CJK characters
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

# Explicit requests for a person: matched on lower-cased text, they always hand off.
HUMAN_REQUEST = re.compile(
    r"(\b(talk|speak|chat|connect me|put me through)\b.{0,20}\b(person|human|agent|representative|someone|staff|operator)\b"
    r"|\b(real|live) (person|human|agent)\b|\bhuman agent\b|\bcustomer service (agent|representative)\b"
    r"|转人工|人工客服|人工服务|找人工|真人客服|接人工|要人工)"
)


@dataclass(frozen=True)
class Intent:
    label: str
    confidence: float
    explicit: bool = False  # matched the explicit human-request rule


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def load_examples(path: Path) -> list[Example]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Example(row["text"], row["label"]) for row in rows]


def explicit_handoff(text: str) -> bool:
    return bool(HUMAN_REQUEST.search(text.lower()))


def char_grams(text: str) -> dict[str, float]:
    """L2-normalised counts of the CJK characters and character bigrams of a text."""
    chars = [ch for ch in text if CJK.match(ch)]
    grams: dict[str, float] = {}
    for gram in chars + ["".join(pair) for pair in zip(chars, chars[1:], strict=False)]:
        grams[gram] = grams.get(gram, 0.0) + 1.0
    norm = sum(v * v for v in grams.values()) ** 0.5
    return {gram: value / norm for gram, value in grams.items()} if norm else {}


def gram_cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(value * b.get(gram, 0.0) for gram, value in a.items())


class IntentClassifier:
    """Nearest labelled examples in embedding space (plus character n-grams for Chinese)."""

    def __init__(self, vectors: np.ndarray, labels: list[str], texts: list[str] | None = None):
        self.vectors = vectors.astype(np.float32)  # (N, D), L2-normalised
        self.labels = np.array(labels)
        self.label_rows = {label: np.flatnonzero(self.labels == label) for label in LABELS}
        # Character n-grams of the examples that have text (the shipped ones; FAQ rows come as vectors only).
        self.texts = list(texts or [])  # the first len(texts) rows' utterances (FAQ rows come as vectors only)
        self.grams = [char_grams(text) for text in self.texts]

    def label_scores(self, text: str, query_vector) -> np.ndarray:
        scores = self.vectors @ np.asarray(query_vector, dtype=np.float32)  # (N,)
        label_scores = np.array([top_mean(scores[rows]) for rows in self.label_rows.values()])  # (L,)
        query_grams = char_grams(text) if CJK.search(text) else {}
        if query_grams and self.grams:
            char_scores = np.array([gram_cosine(query_grams, grams) for grams in self.grams])  # (n,) n ≤ N
            label_scores += CHAR_WEIGHT * np.array(
                [top_mean(char_scores[rows[rows < len(self.grams)]]) for rows in self.label_rows.values()])
        return label_scores

    def classify(self, text: str, query_vector) -> Intent:
        if explicit_handoff(text):
            return Intent("handoff", 1.0, explicit=True)
        label_scores = self.label_scores(text, query_vector)  # (L,)
        weights = np.exp((label_scores - label_scores.max()) / TEMPERATURE)
        best = int(np.argmax(label_scores))
        return Intent(LABELS[best], float(weights[best] / weights.sum()))


def top_mean(scores: np.ndarray) -> float:
    if scores.size == 0:
        return -1.0
    return float(np.sort(scores)[-TOP_N:].mean())


def embed(texts: list[str], model: str | None = None) -> np.ndarray:
    return embedding.embed_texts(texts, model=model, batch_size=64)


_shipped: dict[str, tuple[np.ndarray, list[str], list[str]]] = {}  # embedding model → vectors, labels, texts
_per_base: dict[tuple[int, int | None], IntentClassifier] = {}
_lock = threading.Lock()


def shipped_examples(model: str | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """The shipped utterances' vectors (by ``model``, default the process default), labels and texts,
    embedded once per process and model.

    The vectors are also kept on disk (``KEFU_DATA_DIR/chat``, keyed by the file's content
    and the embedding model), so a new process does not spend its first answer embedding them.
    """
    model = model or settings.KEFU_EMBEDDING_MODEL
    with _lock:
        if model not in _shipped:
            examples = load_examples(TRAIN_FILE)
            texts = [e.text for e in examples]
            _shipped[model] = (stored_vectors(texts, model), [e.label for e in examples], texts)
        return _shipped[model]


def stored_vectors(texts: list[str], model: str | None = None) -> np.ndarray:
    model = model or settings.KEFU_EMBEDDING_MODEL
    digest = hashlib.sha256("\n".join([model, *texts]).encode()).hexdigest()[:16]
    path = Path(settings.KEFU_DATA_DIR) / "chat" / f"intent-examples-{digest}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
    vectors = embed(texts, model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    except OSError:
        pass  # a read-only data dir only costs the embedding again next time
    return vectors


def base_model(kb_id: int | None, index_version: int | None = None) -> str | None:
    """The embedding model of a base's vectors (None: no base, the process default): the one its index
    version recorded when one is named — a question asked across a model switch is embedded with the model of
    the version it was retrieved from, and the classifier of that version must compare it with the same."""
    if kb_id and index_version is not None:
        recorded = IndexVersion.objects.filter(pk=index_version).values_list("embedding_model", flat=True).first()
        if recorded:
            return recorded
    kb = KnowledgeBase.objects.filter(pk=kb_id).only("embedding_model").first() if kb_id else None
    return knowledge_base_model(kb) if kb is not None else None


def faq_vectors(kb_id: int) -> np.ndarray:
    """Every stored FAQ phrasing vector of a base, shape (M, D)."""
    blobs = FaqEntry.objects.filter(knowledge_base_id=kb_id).values_list("embeddings", flat=True)
    rows = [np.frombuffer(bytes(blob), dtype=np.float32) for blob in blobs if blob]
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(rows)


def with_section_titles(kb_id: int, vectors: np.ndarray, labels: list[str],
                        texts: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """The shipped examples plus the base's section titles, labelled ``knowledge``.

    A base of manuals or help pages has no FAQ phrasings to say what it covers; its headings do
    ("Which CPU architectures does Debian support?" is near "What hardware architectures/systems does
    Debian GNU/Linux run on?", far from the shipped general-knowledge asks). Their texts go right after
    the shipped ones, so Chinese questions compare character n-grams with them too.
    """
    titles, title_vectors = heading_examples(kb_id)
    if not titles or title_vectors.shape[1] != vectors.shape[1]:
        return vectors, labels, texts
    return (np.concatenate([vectors, title_vectors]), [*labels, *["knowledge"] * len(titles)],
            [*texts, *titles])


def classifier_for(kb_id: int | None, index_version: int | None) -> IntentClassifier:
    """The classifier of one base at one index version (built once, rebuilt after a re-index).

    Every vector it compares comes from the base's own embedding model — the question's (the caller
    embeds it with that model), the FAQ phrasings' (stored by it) and the shipped examples' (embedded
    by it here) — so a base on a tuned or another model never mixes two models' vectors. A model
    switch always comes with a new index version, which rebuilds the classifier.
    """
    key = (kb_id or 0, index_version)
    with _lock:
        known = _per_base.get(key)
    if known is not None:
        return known
    vectors, labels, texts = shipped_examples(base_model(kb_id, index_version))
    if kb_id is not None:
        vectors, labels, texts = with_section_titles(kb_id, vectors, labels, texts)
        faq = faq_vectors(kb_id)
        if faq.size:
            faq = faq.reshape(-1, vectors.shape[1])
            vectors = np.concatenate([vectors, faq])
            labels = [*labels, *["faq"] * faq.shape[0]]
    classifier = IntentClassifier(vectors, list(labels), texts)
    with _lock:
        # Old versions of the same base are dropped: only the active one is asked.
        for stale in [k for k in _per_base if k[0] == key[0]]:
            del _per_base[stale]
        _per_base[key] = classifier
    return classifier


def forget_classifiers() -> None:
    """Drop every base's classifier (tests: a rolled-back database hands out the same ids again)."""
    with _lock:
        _per_base.clear()


def intent_classify(*, text: str, query_vector, kb_id: int | None = None, index_version: int | None = None) -> Intent:
    """The entry point: the intent of one (standalone) question."""
    if explicit_handoff(text):
        return Intent("handoff", 1.0, explicit=True)
    return classifier_for(kb_id, index_version).classify(text, query_vector)
