"""The regression gate: a build that answers the base's own evaluation set worse is held, not served."""

from __future__ import annotations

import pytest

from kb import indexing
from kb.models import Document, EvalCase, IndexVersion
from kb.regression_gate import MIN_CASES, evaluation_cases, version_gate
from kb.services import eval_case_record, faq_entry_create
from tests.kb.files import SHOP_TOPICS

TOPICS = SHOP_TOPICS


@pytest.fixture
def gated_kb(kb, ingest):
    """A served base with one confirmed question per document: enough cases for the gate to compare."""
    for topic, text, question in TOPICS:
        document = ingest(kb, f"{topic}.md", f"# {topic.title()}\n\n{text}\n".encode())
        eval_case_record(knowledge_base=kb, question=question, origin=EvalCase.Origin.STAFF, document=document)
    kb.refresh_from_db()
    return kb


@pytest.fixture(scope="module")
def random_embedder_dir(tmp_path_factory):
    """A sentence-transformers model with random weights: an embedding model that retrieves nothing well."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from kb.embedding import resolve_embedding_model

    root = tmp_path_factory.mktemp("random-embedder")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_embedding_model("all-minilm-l6-v2")))
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64))
    bert.save_pretrained(root / "hf")
    tokenizer.save_pretrained(root / "hf")
    word = models.Transformer(str(root / "hf"))
    SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension())]).save(str(root / "st"))
    return root / "st"


def test_the_evaluation_set_is_the_held_out_faq_fold_plus_confirmed_questions(kb, ingest):
    # given FAQ entries answered by documents, and one confirmed question
    documents = [ingest(kb, f"d{i}.md", f"# D{i}\n\nAnswer number {i} about topic {i}.\n".encode()) for i in range(6)]
    entries = [faq_entry_create(knowledge_base=kb, question=f"Question {i}?", answer=f"Answer number {i}.",
                                alternatives=[f"Other wording {i}?"], source_document=documents[i], rebuild=False)
               for i in range(6)]
    eval_case_record(knowledge_base=kb, question="Confirmed  question?", origin="gap", faq_entry=entries[0])
    # when the gate collects its cases
    cases = evaluation_cases(kb)
    # then every phrasing of each held-out entry (id divisible by 5) expects its document, without FAQ rows
    held_out = [e for e in entries if e.pk % 5 == 0]
    assert [c.query for c in cases if not c.include_faq] == [p for e in held_out for p in e.phrasings]
    assert all(c.relevant == (f"doc:{e.source_document_id}",) for e in held_out for c in cases
               if c.query in e.phrasings)
    # and the confirmed question expects its FAQ entry, FAQ rows included (whitespace normalised)
    assert cases[-1].query == "Confirmed question?" and cases[-1].relevant == (f"faq:{entries[0].pk}",)
    assert cases[-1].include_faq


def test_an_ordinary_rebuild_passes_and_keeps_its_figures(gated_kb):
    # when the same rows are built again
    version = indexing.index_build(knowledge_base_id=gated_kb.pk)
    # then it is activated, and its report compares two equal figures
    gated_kb.refresh_from_db()
    assert gated_kb.active_index_id == version.pk and version.status == IndexVersion.Status.READY
    report = IndexVersion.objects.get(pk=version.pk).gate
    assert report["passed"] and report["cases"] == len(TOPICS)
    assert report["candidate_ndcg"] == pytest.approx(report["active_ndcg"], abs=1e-6)
    assert report["active_ndcg"] > 0.5  # the bundled embedder finds these paraphrases


def test_a_build_on_a_worse_embedding_model_is_held_and_the_active_one_keeps_serving(
        gated_kb, random_embedder_dir, settings, client, admin_user):
    # given a registered embedding model that retrieves badly
    settings.KEFU_EMBEDDING_MODELS = {"random-tiny": str(random_embedder_dir)}
    active = gated_kb.active_index
    # when the base is rebuilt on it
    version = indexing.index_build(knowledge_base_id=gated_kb.pk, embedding_model="random-tiny")
    # then the version is held with both figures and the reason; nothing the chat reads has changed
    version.refresh_from_db()
    gated_kb.refresh_from_db()
    assert version.status == IndexVersion.Status.HELD
    assert version.gate["candidate_ndcg"] < version.gate["active_ndcg"] - 0.02 and not version.gate["passed"]
    assert "more than the 0.02 tolerance" in version.gate["reason"]
    assert gated_kb.active_index_id == active.pk and gated_kb.embedding_model == "all-minilm-l6-v2"
    assert indexing.active_index(gated_kb.pk).version_id == active.pk
    # and the KB page shows the comparison and the override
    client.force_login(admin_user)
    page = client.get(f"/kb/{gated_kb.slug}/").content.decode()
    assert f"Index v{version.number} was built but not activated" in page and "Activate anyway" in page


def test_activate_anyway_builds_the_held_version_without_the_gate(
        gated_kb, random_embedder_dir, settings, client, admin_user, django_capture_on_commit_callbacks):
    from kb.tasks import rebuild_index

    settings.KEFU_EMBEDDING_MODELS = {"random-tiny": str(random_embedder_dir)}
    held = indexing.index_build(knowledge_base_id=gated_kb.pk, embedding_model="random-tiny")
    client.force_login(admin_user)
    # when the admin activates it anyway
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(f"/kb/{gated_kb.slug}/versions/{held.pk}/activate")
    # then one ungated rebuild on the held version's model is queued...
    assert response.status_code == 302 and len(callbacks) == 1
    # ...and that rebuild (the task's body, run here) serves the new model
    rebuild_index(gated_kb.pk, False, "random-tiny")
    gated_kb.refresh_from_db()
    assert gated_kb.embedding_model == "random-tiny" and gated_kb.active_index.number == held.number + 1
    # a version that is not held cannot be "activated anyway"
    assert client.post(f"/kb/{gated_kb.slug}/versions/{gated_kb.active_index_id}/activate").status_code == 409


def test_without_enough_cases_or_an_active_version_nothing_is_compared(kb, ingest):
    ingest(kb, "a.md", b"# A\n\nCats are allowed.\n")
    first = IndexVersion.objects.get(knowledge_base=kb)
    assert first.gate["passed"] and "first version" in first.gate["reason"]
    report = version_gate(kb, candidate=indexing.active_index(kb.pk), active=indexing.active_index(kb.pk))
    assert report.passed and f"under {MIN_CASES}" in report.reason


def test_a_new_document_is_ready_even_when_its_build_is_held(gated_kb, ingest, monkeypatch):
    # given a gate that holds every build (the comparison itself is tested above)
    from kb import regression_gate

    monkeypatch.setattr(regression_gate, "TOLERANCE", -1.0)
    # when a document is added
    document = ingest(gated_kb, "new.md", b"# New\n\nA brand new policy text.\n")
    # then it is parsed and embedded (ready), and its stage says the index is held
    document.refresh_from_db()
    assert document.status == Document.Status.READY and "held by the regression gate" in document.stage
