"""Staff pages: access control, upload checks (4xx, nothing stored), progress JSON, FAQ editor, try a query."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.models import Document, FaqEntry, KnowledgeBase
from tests.conftest import staff_member


@pytest.fixture
def staff(client, django_user_model):
    user = staff_member("staff", password="pw-12345")
    client.force_login(user)
    return client


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("kb.services.ingest_enqueue", lambda _id: None)
    monkeypatch.setattr("kb.services.index_rebuild_enqueue", lambda _id: None)


def test_pages_need_a_staff_login(client, kb, django_user_model):
    assert client.get(reverse("kb:list")).status_code == 302
    client.force_login(django_user_model.objects.create_user("customer", password="pw-12345"))
    assert client.get(reverse("kb:detail", args=[kb.slug])).status_code == 403


def test_create_knowledge_base_and_list_it(staff):
    response = staff.post(reverse("kb:list"), {"name": "Manuals", "languages": "en,zh", "chunk_size": 200,
                                               "chunk_overlap": 30, "top_k": 5})
    assert response.status_code == 302 and KnowledgeBase.objects.get(slug="manuals").languages == "en,zh"
    assert "Manuals" in staff.get(reverse("kb:list")).content.decode()
    bad = staff.post(reverse("kb:list"), {"name": "X", "languages": "en", "chunk_size": 64, "chunk_overlap": 64,
                                          "top_k": 5})
    assert bad.status_code == 400 and "overlap" in bad.content.decode()


def test_upload_accepts_files_and_enqueues_on_commit(staff, kb, monkeypatch, django_capture_on_commit_callbacks):
    enqueued = []
    monkeypatch.setattr("kb.services.ingest_enqueue", enqueued.append)
    files = [SimpleUploadedFile("a.md", b"# A\n\nText one."), SimpleUploadedFile("b.txt", b"Text two.")]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("kb:upload", args=[kb.slug]), {"files": files})
    assert response.status_code == 201
    ids = [d["id"] for d in response.json()["documents"]]
    assert sorted(enqueued) == sorted(ids) and Document.objects.count() == 2
    progress = staff.get(reverse("kb:progress", args=[kb.slug]), {"ids": ",".join(map(str, ids))}).json()
    assert {d["status"] for d in progress["documents"]} == {"queued"}


@pytest.mark.parametrize("name, data, status, message", [
    ("empty.txt", b"", 400, "empty"),
    ("report.pdf", b"<html>not a pdf</html>", 400, "not a PDF"),
    ("big.txt", b"x" * 2000, 413, "limit"),
])
def test_bad_upload_is_refused_and_nothing_stored(staff, kb, settings, no_enqueue, name, data, status, message):
    settings.KEFU_MAX_UPLOAD_BYTES = 1000
    good = SimpleUploadedFile("good.txt", b"Fine text.")
    response = staff.post(reverse("kb:upload", args=[kb.slug]), {"files": [good, SimpleUploadedFile(name, data)]})
    assert response.status_code == status and message in response.json()["error"]
    assert not Document.objects.exists()


def test_upload_without_files_and_bad_progress_ids(staff, kb):
    assert staff.post(reverse("kb:upload", args=[kb.slug])).status_code == 400
    assert staff.get(reverse("kb:progress", args=[kb.slug]), {"ids": "1,x"}).status_code == 400
    assert staff.get(reverse("kb:upload", args=[kb.slug])).status_code == 405


def test_documents_page_shows_status_and_errors_and_delete_works(staff, kb, ingest, no_enqueue):
    failed = ingest(kb, "broken.pdf", b"%PDF-1.4 garbage")
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    assert "broken" in page and "damaged" in page
    response = staff.post(reverse("kb:document_delete", args=[kb.slug, failed.pk]))
    assert response.status_code == 302 and not Document.objects.exists()


def test_the_kb_page_lists_the_terms_its_texts_explain_in_brackets(staff, kb, no_enqueue):
    from kb.indexing import index_build
    from kb.retrieval import glossary
    from kb.services import faq_entry_create

    # given a base without an index: nothing is listed
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    assert "No term is explained in brackets yet." in page
    # given an indexed base whose FAQ explains a term
    glossary.forget_glossaries()
    faq_entry_create(knowledge_base=kb, question="What is a bygglov?",
                     answer="A bygglov (building permit) is issued by the municipality.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    # when staff open its page
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    # then the term and its explanation are listed as the search uses them
    assert "<td>bygglov</td><td>building permit</td>" in page
    glossary.forget_glossaries()


def test_faq_editor_create_edit_delete_and_bad_sheet(staff, kb, no_enqueue):
    url = reverse("kb:faq", args=[kb.slug])
    staff.post(url, {"question": "How do I pay?", "answer": "By card.", "alternatives": "Payment options\n\n"})
    entry = FaqEntry.objects.get()
    assert entry.alternatives == ["Payment options"]
    staff.post(reverse("kb:faq_edit", args=[kb.slug, entry.pk]), {"question": "How can I pay?", "answer": "Card.",
                                                                  "alternatives": ""})
    entry.refresh_from_db()
    assert (entry.question, entry.alternatives) == ("How can I pay?", [])
    bad = staff.post(reverse("kb:faq_import", args=[kb.slug]), {"sheet": SimpleUploadedFile("faq.docx", b"junk")})
    assert bad.status_code == 400 and not Document.objects.exists()
    good = staff.post(reverse("kb:faq_import", args=[kb.slug]),
                      {"sheet": SimpleUploadedFile("faq.csv", b"question,answer\nQ?,A.\n")})
    assert good.status_code == 302 and Document.objects.get().filename == "faq.csv"
    staff.post(reverse("kb:faq_delete", args=[kb.slug, entry.pk]))
    assert not FaqEntry.objects.filter(pk=entry.pk).exists()


def test_try_a_query_shows_three_columns(staff, kb, ingest):
    # (three documents: with fewer, rank-bm25's Okapi idf is zero or negative for every term)
    ingest(kb, "returns.md", b"# Returns\n\nItems can be returned within thirty days.\n")
    ingest(kb, "shipping.md", b"# Shipping\n\nParcels ship within two days.\n")
    ingest(kb, "hours.md", b"# Hours\n\nThe shop opens at nine.\n")
    page = staff.get(reverse("kb:search", args=[kb.slug]), {"q": "return an item"}).content.decode()
    assert all(title in page for title in ("BM25", "Dense", "Fused"))
    assert page.count("returned within thirty days") == 3


def test_a_term_staff_add_before_the_first_index_is_listed_at_once(staff, kb, no_enqueue):
    # given a base with nothing indexed yet
    url = reverse("kb:glossary", args=[kb.slug])
    # when staff add a term of their own
    assert staff.post(url, {"action": "explain", "term": "stambyte", "explanation": "main pipe replacement"}
                      ).status_code == 302
    # then the page lists it as theirs
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    assert "<td>stambyte</td><td>main pipe replacement</td>" in page and "yours" in page


def test_try_a_query_searches_as_the_chat_reads_a_customers_question(staff, kb, ingest):
    from kb.retrieval import glossary

    # given a base whose texts explain a term in brackets
    glossary.forget_glossaries()
    ingest(kb, "permits.md", b"# Permits\n\nA bygglov (building permit) is valid for five years.\n")
    ingest(kb, "shipping.md", b"# Shipping\n\nParcels ship within two days.\n")
    ingest(kb, "hours.md", b"# Hours\n\nThe shop opens at nine.\n")
    url = reverse("kb:search", args=[kb.slug])
    # when staff try a question with the term, misspelled elsewhere
    page = staff.get(url, {"q": "how long is a bygglov vlaid"}).content.decode()
    # then they see the reading the chat searches with, and its hits
    assert "Searched as a customer" in page and "<q>how long is a bygglov (building permit) valid</q>" in page
    assert "valid for five years" in page
    # and a question read as typed shows no second reading
    assert "Searched as" not in staff.get(url, {"q": "when does the shop open"}).content.decode()
    glossary.forget_glossaries()


def test_admin_lists_kb_models(admin_client, kb):
    for model in ("knowledgebase", "document", "chunk", "faqentry", "indexversion"):
        assert admin_client.get(f"/admin/kb/{model}/").status_code == 200


def test_staff_correct_the_glossary_on_the_kb_page_and_bad_input_stores_nothing(staff, kb, no_enqueue, client):
    from kb.indexing import index_build
    from kb.models import GlossaryEdit
    from kb.services import faq_entry_create
    from kefu.roles import ANALYST

    # given an indexed base whose FAQ explains a term
    faq_entry_create(knowledge_base=kb, question="What is a bygglov?",
                     answer="A bygglov (building permit) is issued by the municipality.", rebuild=False)
    index_build(knowledge_base_id=kb.pk)
    url = reverse("kb:glossary", args=[kb.slug])
    # when staff add a term of their own
    response = staff.post(url, {"action": "explain", "term": "stambyte", "explanation": "main pipe replacement"})
    # then they are back on the glossary, which lists it as theirs
    assert response.status_code == 302 and response.url.endswith("#kb-glossary")
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    assert "<td>stambyte</td><td>main pipe replacement</td>" in page and "yours" in page
    assert "is explained as “main pipe replacement”" in page
    # when they stop the mined term being explained
    assert staff.post(url, {"action": "ignore", "term": "bygglov"}).status_code == 302
    page = staff.get(reverse("kb:detail", args=[kb.slug])).content.decode()
    assert "<td>bygglov</td>" not in page and "Not explained, as you chose:" in page
    # then bad input is a 400 with the reason, and nothing more is stored
    for data, reason in [({"action": "explain", "term": "ROT", "explanation": ""}, "Say what the term means."),
                         ({"action": "explain", "term": "ROT", "explanation": "rot"}, "other than the term"),
                         ({"action": "explain", "term": "ROT (tax)", "explanation": "a tax"}, "Leave out brackets"),
                         ({"action": "explain", "term": "123", "explanation": "a number"}, "letters"),
                         ({"action": "explain", "term": "the", "explanation": "a word"}, "Name a term of the base"),
                         ({"action": "explain", "term": "x", "explanation": "a letter"}, "Name a term of the base"),
                         ({"action": "ignore", "term": "attefall"}, "not in this base"),
                         ({"action": "undo", "term": "attefall"}, "no correction to undo"),
                         ({"action": "drop", "term": "bygglov"}, "Select a valid choice")]:
        response = staff.post(url, data)
        assert response.status_code == 400 and reason in response.content.decode(), data
    assert sorted(GlossaryEdit.objects.values_list("term", "kind")) == [("bygglov", "ignore"),
                                                                       ("stambyte", "explain")]
    # and one who may only read the base may not correct it
    client.force_login(staff_member("analyst", roles=(ANALYST,), password="pw-12345"))
    assert client.post(url, {"action": "undo", "term": "bygglov"}).status_code == 403
    assert GlossaryEdit.objects.count() == 2
