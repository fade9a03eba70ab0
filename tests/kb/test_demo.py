"""The demo base: FAQ entries + answer documents, indexed, idempotent."""

from __future__ import annotations

import pytest

from kb.demo import DEMO_SLUG, ensure_demo_knowledge_base, faq_rows
from kb.models import KnowledgeBase
from kb.search import hybrid


def test_demo_base_is_built_once_and_answers_from_its_faq(db, embedder, monkeypatch):
    # given the first dozen real rows of the zaragoza FAQ
    rows = faq_rows()[:12]
    assert len(faq_rows()) > 400
    monkeypatch.setattr("kb.demo.faq_rows", lambda: rows)
    # when
    first = ensure_demo_knowledge_base()
    second = ensure_demo_knowledge_base()
    # then
    kb = KnowledgeBase.objects.get(slug=DEMO_SLUG)
    assert "ready: 12 documents" in first and "already present" in second
    assert kb.faq_entries.count() == 12 and kb.documents.filter(status="ready").count() == 12
    hits = hybrid(kb, rows[3]["q"], 3)
    assert hits[0].is_faq and hits[0].faq_answer == rows[3]["a"] and hits[0].similarity > 0.95


@pytest.mark.slow
def test_the_demo_base_embeds_with_the_bigger_bundled_model(db, embedder, monkeypatch, settings):
    from kb.bundled_models import MPNET

    # given the shipped setting (the suite otherwise builds the demo on the small model) and a few real rows
    settings.KEFU_DEMO_EMBEDDING_MODEL = MPNET
    rows = faq_rows()[:6]
    monkeypatch.setattr("kb.demo.faq_rows", lambda: rows)
    # when the demo base is built
    ensure_demo_knowledge_base()
    # then the base and its index version name all-mpnet-base-v2, and it finds an entry by its question
    kb = KnowledgeBase.objects.get(slug=DEMO_SLUG)
    assert kb.embedding_model == MPNET and kb.active_index.embedding_model == MPNET
    hits = hybrid(kb, rows[2]["q"], 3)
    assert hits[0].is_faq and hits[0].faq_answer == rows[2]["a"]


def test_the_chinese_demo_base_is_built_once_from_debians_chinese_faq(db, embedder, tmp_path):
    from kb.demo import DEMO_ZH_SLUG, ensure_demo_zh_knowledge_base
    from tests.chat.demo_page import zh_faq_subset

    # given two chapters of Debian's FAQ in Simplified Chinese
    folder = zh_faq_subset(tmp_path)
    # when the Chinese demo base is ensured twice
    first = ensure_demo_zh_knowledge_base(folder)
    second = ensure_demo_zh_knowledge_base(folder)
    # then it is built once, each chapter one ready document, indexed, as a Chinese base
    kb = KnowledgeBase.objects.get(slug=DEMO_ZH_SLUG)
    assert "ready: 2 documents" in first and "already present: 2 documents" in second
    assert kb.languages == "zh" and kb.active_index is not None and kb.documents.filter(status="ready").count() == 2
    assert KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).count() == 1
    # and a Chinese question finds its chapter's section
    hits = hybrid(kb, "什么是 Debian GNU/Linux？", 3)
    assert hits and any("什么是 Debian GNU/Linux" in (hit.heading_path or "") for hit in hits)


def test_without_debians_chinese_faq_the_chinese_demo_is_skipped_in_one_line(db, tmp_path):
    from kb.demo import DEMO_ZH_SLUG, ensure_demo_zh_knowledge_base

    # given no Chinese FAQ / when / then one line says so and names the package; no base is made
    line = ensure_demo_zh_knowledge_base(tmp_path / "absent")
    assert "skipped" in line and "debian-faq-zh-cn" in line and "\n" not in line
    assert not KnowledgeBase.objects.filter(slug=DEMO_ZH_SLUG).exists()


def test_the_demo_embedder_is_tuned_once_and_a_failed_run_is_tried_again(db, embedder, monkeypatch):
    from kb.demo import demo_tuning_pending, tuning_summary
    from kb.models import TuningRun
    from kb.tuning import tuning_run

    # given a demo base of six real rows (too few labelled items to measure a gain)
    monkeypatch.setattr("kb.demo.faq_rows", lambda: faq_rows()[:6])
    ensure_demo_knowledge_base()
    # when its tuning run is taken and run
    run = demo_tuning_pending()
    finished = tuning_run(run_id=run.pk)
    # then it ends done, not adopted, with the reason; the base keeps its model; it is not tried again
    kb = KnowledgeBase.objects.get(slug=DEMO_SLUG)
    assert finished.status == TuningRun.Status.DONE and not finished.adopted
    assert "Too few labelled pairs" in tuning_summary(finished) and not kb.embedding_model.startswith("tuned:")
    assert demo_tuning_pending() is None
    # and a base whose only run failed gets a new one
    TuningRun.objects.filter(pk=run.pk).update(status=TuningRun.Status.FAILED)
    again = demo_tuning_pending()
    assert again is not None and again.pk != run.pk and again.status == TuningRun.Status.QUEUED


def test_demo_setup_leaves_the_tuning_to_the_server_or_tunes_now(transactional_db, embedder, monkeypatch, settings):
    # (transactional: the jobs run in a thread of their own, on their own connection; embedded mode in both
    # suites: the embedded server is what takes a queued run up on its first request)
    import io

    settings.KEFU_MODE = "embedded"

    from django.core.management import call_command

    from kb.models import TuningRun
    from kb.recovery import documents_resume
    from kefu.background import drain

    # given a demo of six rows
    monkeypatch.setattr("kb.demo.faq_rows", lambda: faq_rows()[:6])
    # when demo_setup runs with --no-tune, then no run is made
    call_command("demo_setup", "--no-tune", stdout=io.StringIO())
    assert not TuningRun.objects.exists()
    # when it runs plainly (twice), one run is queued for the server and nothing is tuned here
    first, second = io.StringIO(), io.StringIO()
    call_command("demo_setup", stdout=first)
    call_command("demo_setup", stdout=second)
    assert "Demo embedder tuning: queued; the server tunes it in the background" in first.getvalue()
    assert "already queued" in second.getvalue()
    assert list(TuningRun.objects.values_list("status", flat=True)) == [TuningRun.Status.QUEUED]
    # when the embedded server starts (its first request resumes what was left), the run is taken up and ends
    documents_resume()
    drain(timeout=600)  # the demo base's all-mpnet-base-v2: its answerability fits and the job load it
    run = TuningRun.objects.get()
    assert run.status == TuningRun.Status.DONE and "Too few labelled pairs" in run.reason
    # then demo_setup says it was done; --tune-now on a base whose run failed tunes here and says what came of it
    third = io.StringIO()
    call_command("demo_setup", stdout=third)
    assert "Demo embedder tuning: done before." in third.getvalue()
    TuningRun.objects.update(status=TuningRun.Status.FAILED)
    now = io.StringIO()
    call_command("demo_setup", "--tune-now", stdout=now)
    drain(timeout=600)  # the index builds queued answerability fits: they end before teardown
    assert "Demo embedder tuning: Too few labelled pairs" in now.getvalue() and TuningRun.objects.count() == 2
