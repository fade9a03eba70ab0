"""Intent: explicit human requests always hand off; the classifier learns from shipped and FAQ examples."""

from __future__ import annotations

import numpy as np
import pytest

from chat.pipeline import intent
from chat.pipeline.intent import LABELS, explicit_handoff, intent_classify, load_examples


def test_the_shipped_examples_cover_every_label_in_english_and_chinese_with_30_or_more_each():
    examples = load_examples(intent.TRAIN_FILE)
    for label in LABELS:
        texts = [e.text for e in examples if e.label == label]
        assert len(texts) >= 30, label
        assert any(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in texts), label
    held_out = {e.text for e in load_examples(intent.HELDOUT_FILE)}
    assert held_out and not held_out & {e.text for e in examples}


@pytest.mark.parametrize("text", ["I want to talk to a person", "Can I speak with a real human please?",
                                  "转人工", "我要人工客服！", "put me through to an agent"])
def test_explicit_requests_for_a_human_always_hand_off(text):
    # given a vector that points nowhere in particular
    vector = np.zeros(384, dtype=np.float32)
    # when / then the rule wins without looking at vectors
    assert explicit_handoff(text)
    assert intent_classify(text=text, query_vector=vector) == intent.Intent("handoff", 1.0, explicit=True)


def test_ordinary_questions_are_not_explicit_hand_offs():
    for text in ["How do I talk to my neighbour about a fence?", "What is a heat pump?", "人工草坪多少钱？"]:
        assert not explicit_handoff(text)


def test_the_classifier_beats_chance_clearly_on_the_held_out_english_utterances(embedder):
    examples = [e for e in load_examples(intent.HELDOUT_FILE) if not any("\u4e00" <= c <= "\u9fff" for c in e.text)]
    vectors = intent.embed([e.text for e in examples])
    predicted = [intent_classify(text=e.text, query_vector=v).label for e, v in zip(examples, vectors, strict=True)]
    accuracy = np.mean([p == e.label for p, e in zip(predicted, examples, strict=True)])
    assert accuracy >= 0.8


def test_the_bases_faq_questions_join_the_faq_label_and_a_reindex_retrains(support_kb, embedder):
    # given a base whose FAQ has an unusual question
    from kb.indexing import index_build
    from kb.services import faq_entries_embed, faq_entry_create

    question = "Can my dog stay in the garden while you lay the roof tiles?"
    vector = intent.embed([question])[0]
    before = intent_classify(text=question, query_vector=vector, kb_id=support_kb.pk,
                             index_version=support_kb.active_index_id)
    # when the FAQ gains that question and the base is re-indexed
    faq_entry_create(knowledge_base=support_kb, question=question, answer="Yes.", rebuild=False)
    faq_entries_embed(knowledge_base_id=support_kb.pk)
    version = index_build(knowledge_base_id=support_kb.pk)
    after = intent_classify(text=question, query_vector=vector, kb_id=support_kb.pk, index_version=version.pk)
    # then the new version's classifier knows it as an FAQ, confidently
    assert after.label == "faq"
    assert before.label != "faq" or after.confidence > before.confidence


def test_a_bases_section_titles_say_what_it_covers_to_the_classifier(support_kb, embedder):
    # given a question the shipped examples call general knowledge (out of scope)
    from kb.indexing import index_build
    from kb.ingestion import document_ingest
    from kb.services import document_upload

    question = "How tall is the Eiffel Tower?"
    vector = intent.embed([question])[0]
    before = intent_classify(text=question, query_vector=vector, kb_id=support_kb.pk,
                             index_version=support_kb.active_index_id)
    assert before.label == "out_of_scope"
    # when the base gains a guide with a section of that title and is re-indexed
    guide = b"# Paris trips\n\n## 2.1. How tall is the Eiffel Tower?\n\nIt measures 330 metres with its antennas.\n"
    upload = document_upload(knowledge_base=support_kb, filename="paris.md", data=guide, enqueue=False)
    document_ingest(document_id=upload.document.pk)
    version = index_build(knowledge_base_id=support_kb.pk)
    after = intent_classify(text=question, query_vector=vector, kb_id=support_kb.pk, index_version=version.pk)
    # then the title joins the knowledge label, and the question is no longer out of scope
    classifier = intent.classifier_for(support_kb.pk, version.pk)
    assert "How tall is the Eiffel Tower?" in classifier_texts(classifier, "knowledge")
    assert after.label == "knowledge"


def classifier_texts(classifier, label: str) -> list[str]:
    return [text for text, row_label in zip(classifier.texts, classifier.labels.tolist(), strict=False)
            if row_label == label]


def test_chinese_questions_are_classified_with_character_ngrams_too(embedder):
    # given the held-out Chinese utterances (the English embedder alone gets about half of them)
    examples = [e for e in load_examples(intent.HELDOUT_FILE) if any("\u4e00" <= c <= "\u9fff" for c in e.text)]
    vectors = intent.embed([e.text for e in examples])
    # when
    predicted = [intent_classify(text=e.text, query_vector=v).label for e, v in zip(examples, vectors, strict=True)]
    # then
    assert np.mean([p == e.label for p, e in zip(predicted, examples, strict=True)]) >= 0.8


def test_character_grams_only_count_for_text_with_chinese():
    assert intent.char_grams("hello") == {}
    grams = intent.char_grams("转人工")
    assert set(grams) == {"转", "人", "工", "转人", "人工"}
    assert abs(sum(v * v for v in grams.values()) - 1) < 1e-9


def test_shipped_vectors_are_kept_on_disk_for_the_next_process(embedder, chat_data_dir, monkeypatch):
    # given a process that embedded the shipped examples once
    texts = [e.text for e in load_examples(intent.TRAIN_FILE)][:5]
    first = intent.stored_vectors(texts)
    assert list((chat_data_dir / "chat").glob("intent-examples-*.npy"))
    # when the next process asks, it does not embed again
    monkeypatch.setattr(intent, "embed", lambda texts: pytest.fail("embedded again"))
    assert np.array_equal(intent.stored_vectors(texts), first)


def test_a_versions_classifier_compares_with_the_model_that_version_was_built_with(support_kb, tiny_registered):
    # given a base whose model field already names another model (a switch committing while a question is
    # asked), and its serving version built with the default model
    from kb.models import KnowledgeBase

    version = support_kb.active_index
    KnowledgeBase.objects.filter(pk=support_kb.pk).update(embedding_model=tiny_registered)
    # when that version's classifier is built, then its examples are in the version's embedding space
    classifier = intent.classifier_for(support_kb.pk, version.pk)
    assert classifier.vectors.shape[1] == intent.embed(["hello"]).shape[1]
    assert intent.base_model(support_kb.pk, version.pk) == version.embedding_model
