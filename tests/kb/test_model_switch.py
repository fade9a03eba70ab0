"""Switching a base's embedding model from the KB page and ``kb_set_model``: the choices offered, the background
job with its progress, the old index serving until the swap, the versions table naming each version's model,
and bad input refused with nothing stored."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from kb.models import KnowledgeBase, TuningRun
from kefu.roles import ANALYST
from tests.conftest import staff_member
from tests.kb.tiny_models import DIMENSION


@pytest.fixture
def tiny(tiny_registered):
    """A tiny model registered as "tiny-a"."""
    return tiny_registered


@pytest.fixture
def base(db, tiny, ingest):
    """An indexed base on the default model: two FAQ entries and a document."""
    from kb.services import faq_entry_create, knowledge_base_create

    kb = knowledge_base_create(name="Shop", chunk_size=64, chunk_overlap=8)
    faq_entry_create(knowledge_base=kb, question="What are your opening hours?",
                     answer="We are open from nine to five on weekdays.", rebuild=False)
    faq_entry_create(knowledge_base=kb, question="Do you ship abroad?",
                     answer="We ship to every country in the European Union.", rebuild=False)
    ingest(kb, "returns.md", b"# Returns\n\nReturn any item within thirty days for a full refund.")
    kb.refresh_from_db()
    assert kb.active_index is not None and kb.embedding_model == "all-minilm-l6-v2"
    return kb


@pytest.fixture
def staff(client):
    client.force_login(staff_member("editor", password="pw-12345"))
    return client


def test_the_page_offers_the_registered_and_tuned_models_and_names_each_versions_model(base, staff, settings):
    from kb.embedding import TUNED_MANIFEST, tuned_model_dir

    # given a tuned artifact of this base on disk (and one of another base)
    for slug in (base.slug, "other"):
        folder = tuned_model_dir(slug, "ab" * 32)
        folder.mkdir(parents=True)
        (folder / TUNED_MANIFEST).write_text('{"parent": "all-minilm-l6-v2", "method": "full"}')
    # when staff open the KB page
    page = staff.get(reverse("kb:detail", args=[base.slug])).content.decode()
    # then the switch form lists the bundled, registered and this base's tuned models, the current one selected
    form = page[page.index('id="kb-model-form"'):]
    form = form[:form.index("</form>")]
    assert '<option value="all-minilm-l6-v2" selected>' in form and '<option value="tiny-a">' in form
    assert f"tuned:{base.slug}:{'ab' * 6}" in form and "tuned:other:" not in form
    # and the versions table names the model each version was built with
    versions = page[page.index('id="kb-index-versions"'):]
    assert f'data-version="{base.active_index.number}"' in versions and "all-minilm-l6-v2" in versions


def test_a_switch_from_the_page_re_embeds_in_the_background_and_the_old_index_serves_until_the_swap(
        base, staff, monkeypatch, django_capture_on_commit_callbacks):
    from kb import model_switch
    from kb.indexing import active_index
    from kb.models import Chunk

    enqueued = []
    monkeypatch.setattr(model_switch, "model_switch_enqueue", enqueued.append)
    old_version = base.active_index_id
    # when an editor chooses the tiny model
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(reverse("kb:model", args=[base.slug]), {"model": "tiny-a"})
    # then one queued switch is recorded and enqueued on commit; nothing is switched yet
    run = TuningRun.objects.get(knowledge_base=base)
    assert response.status_code == 302 and enqueued == [run.pk]
    assert (run.method, run.status, run.base_model, run.tuned_model) == ("switch", "queued", "all-minilm-l6-v2",
                                                                         "tiny-a")
    assert KnowledgeBase.objects.get(pk=base.pk).embedding_model == "all-minilm-l6-v2"
    page = staff.get(reverse("kb:detail", args=[base.slug])).content.decode()
    assert f'data-run="{run.pk}" data-status="queued"' in page and "switch to tiny-a" in page
    # when the worker runs it, the base keeps its old model and index at every progress step
    seen = []
    real = model_switch.switch_progress

    def watched(run_id, name):
        save = real(run_id, name)

        def progress(done, total):
            kb = KnowledgeBase.objects.get(pk=base.pk)
            seen.append((kb.embedding_model, kb.active_index_id, active_index(base.pk).dense.index.d))
            save(done, total)

        return progress

    monkeypatch.setattr(model_switch, "switch_progress", watched)
    model_switch.model_switch_run(run_id=run.pk)
    assert seen and set(seen) == {("all-minilm-l6-v2", old_version, 384)}
    # then the run is done, the base embeds with the tiny model through a new active version that records it
    run.refresh_from_db()
    base.refresh_from_db()
    assert (run.status, run.progress, run.adopted) == ("done", 100, True) and "tiny-a" in run.reason
    assert "Switched from all-minilm-l6-v2 to tiny-a." in staff.get(reverse("kb:detail", args=[base.slug])).content.decode()
    chinese = staff.get(reverse("kb:detail", args=[base.slug]), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "已从 all-minilm-l6-v2 切换到 tiny-a。" in chinese
    assert base.embedding_model == "tiny-a" and base.active_index_id != old_version
    assert base.active_index.embedding_model == "tiny-a" and active_index(base.pk).dense.index.d == DIMENSION
    assert len(bytes(Chunk.objects.get(document__knowledge_base=base).embedding)) == 4 * DIMENSION
    progress = staff.get(reverse("kb:tuning_progress", args=[base.slug])).json()["runs"][0]
    assert (progress["id"], progress["status"], progress["method"]) == (run.pk, "done", "switch")
    # and the page's versions table shows both versions with their models
    versions = staff.get(reverse("kb:detail", args=[base.slug])).content.decode()
    versions = versions[versions.index('id="kb-index-versions"'):]
    assert versions.count("<code>tiny-a</code>") == 1 and versions.count("<code>all-minilm-l6-v2</code>") == 1


def test_a_failed_switch_job_ends_failed_and_the_old_model_keeps_serving(base, monkeypatch):
    from kb.model_switch import model_switch_run, model_switch_start

    run = model_switch_start(knowledge_base=base, name="tiny-a", enqueue=False)

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("kb.retrieval.dense.build_dense", disk_full)
    run = model_switch_run(run_id=run.pk)
    base.refresh_from_db()
    assert run.status == "failed" and "disk full" in run.error_message
    assert base.embedding_model == "all-minilm-l6-v2" and base.active_index.embedding_model == "all-minilm-l6-v2"


@pytest.mark.parametrize("model, status, message", [
    ("no-such-model", 400, "Select a valid choice"),
    ("all-minilm-l6-v2", 400, "already embeds with this model"),
    ("", 400, "This field is required"),
])
def test_a_bad_choice_is_refused_and_nothing_stored(base, staff, model, status, message):
    response = staff.post(reverse("kb:model", args=[base.slug]), {"model": model})
    assert response.status_code == status and message in response.content.decode()
    assert not TuningRun.objects.exists() and KnowledgeBase.objects.get(pk=base.pk).embedding_model == "all-minilm-l6-v2"


def test_a_registered_model_whose_directory_is_gone_is_refused(base, staff, settings, tmp_path):
    settings.KEFU_EMBEDDING_MODELS = {**settings.KEFU_EMBEDDING_MODELS, "gone": str(tmp_path / "gone")}
    response = staff.post(reverse("kb:model", args=[base.slug]), {"model": "gone"})
    assert response.status_code == 400 and "not a sentence-transformers directory" in response.content.decode()
    assert not TuningRun.objects.exists()


def test_a_switch_while_another_job_of_the_base_runs_is_a_conflict(base, staff):
    from kb.tuning import tuning_start

    tuning_start(knowledge_base=base, enqueue=False)
    response = staff.post(reverse("kb:model", args=[base.slug]), {"model": "tiny-a"})
    assert response.status_code == 409 and "already queued or running" in response.content.decode()
    assert TuningRun.objects.filter(knowledge_base=base).count() == 1


def test_only_those_who_may_edit_the_base_can_switch_it(base, client, django_user_model):
    url = reverse("kb:model", args=[base.slug])
    # an analyst sees the base but may not edit it; a customer has no role; a GET changes nothing
    client.force_login(staff_member("analyst", roles=(ANALYST,), password="pw-12345"))
    assert client.get(reverse("kb:detail", args=[base.slug])).status_code == 200
    assert client.post(url, {"model": "tiny-a"}).status_code == 403
    client.force_login(django_user_model.objects.create_user("customer", password="pw-12345"))
    assert client.post(url, {"model": "tiny-a"}).status_code == 403
    client.force_login(staff_member("editor", password="pw-12345"))
    assert client.get(url).status_code == 405
    assert not TuningRun.objects.exists()


def test_the_command_refuses_bad_input_with_a_clear_error_and_stores_nothing(base):
    from kb.tuning import tuning_start

    with pytest.raises(CommandError, match="No knowledge base"):
        call_command("kb_set_model", "no-such-base", "tiny-a")
    with pytest.raises(CommandError, match="Unknown embedding model 'nope'"):
        call_command("kb_set_model", base.slug, "nope")
    with pytest.raises(CommandError, match="already embeds with all-minilm-l6-v2"):
        call_command("kb_set_model", base.slug, "all-minilm-l6-v2")
    out = StringIO()
    with pytest.raises(CommandError, match="Name the embedding model"):
        call_command("kb_set_model", base.slug, stdout=out)
    assert "* all-minilm-l6-v2" in out.getvalue() and "  tiny-a" in out.getvalue()
    assert not TuningRun.objects.exists()
    tuning_start(knowledge_base=base, enqueue=False)
    with pytest.raises(CommandError, match="already queued or running"):
        call_command("kb_set_model", base.slug, "tiny-a")
    assert TuningRun.objects.count() == 1


def test_the_command_switches_here_with_progress(transactional_db, base):
    from kefu.background import drain

    out = StringIO()
    call_command("kb_set_model", base.slug, "tiny-a", stdout=out)
    drain()  # committed index builds enqueued follow-up work: let it end before teardown
    base.refresh_from_db()
    assert base.embedding_model == "tiny-a" and base.active_index.embedding_model == "tiny-a"
    assert "Switched from all-minilm-l6-v2 to tiny-a" in out.getvalue() and "%]" in out.getvalue()


def test_a_new_base_chooses_its_model_on_the_kb_list_page(db, tiny, staff):
    from django.conf import settings

    fields = {"name": "Manuals zh", "languages": "zh", "chunk_size": 200, "chunk_overlap": 30, "top_k": 5}
    # the creation form offers the registered models, the process default first and preselected
    page = staff.get(reverse("kb:list")).content.decode()
    assert f'<option value="{settings.KEFU_EMBEDDING_MODEL}" selected>' in page and '<option value="tiny-a">' in page
    # a base created on the tiny model records it; an unknown model is refused and nothing is stored
    assert staff.post(reverse("kb:list"), {**fields, "embedding_model": "tiny-a"}).status_code == 302
    assert KnowledgeBase.objects.get(slug="manuals-zh").embedding_model == "tiny-a"
    refused = staff.post(reverse("kb:list"), {**fields, "name": "Other", "embedding_model": "nope"})
    assert refused.status_code == 400 and not KnowledgeBase.objects.filter(slug="other").exists()


def test_a_switch_from_the_page_runs_on_the_ingest_queue_to_its_end(transactional_db, base, staff, settings, request):
    import time

    from kefu.background import drain

    # given the ingest queue: in service mode a real Celery worker (knowing the tiny model), else the thread pool
    if settings.KEFU_MODE == "service":
        request.getfixturevalue("start_celery_worker")(["ingest"], env={
            "KEFU_DATA_DIR": str(settings.KEFU_DATA_DIR),
            "KEFU_EMBEDDING_MODELS": f"tiny-a={settings.KEFU_EMBEDDING_MODELS['tiny-a']}"})
    # when an editor chooses the tiny model
    response = staff.post(reverse("kb:model", args=[base.slug]), {"model": "tiny-a"})
    drain()
    run = TuningRun.objects.get(knowledge_base=base)
    deadline = time.monotonic() + 180
    while run.status in TuningRun.ACTIVE_STATUSES and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    drain()  # what the activation queued in this process (the answerability fit) ends before teardown
    # then the task the form enqueued ran to its end and switched the base
    base.refresh_from_db()
    assert response.status_code == 302 and (run.status, run.progress) == ("done", 100), run.error_message
    assert base.embedding_model == "tiny-a" and base.active_index.embedding_model == "tiny-a"
