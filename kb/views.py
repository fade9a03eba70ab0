"""Staff pages for knowledge bases: list/create, upload with live progress, documents, FAQ, try a query.

Views parse and validate (every 4xx is decided here), call one service or selector, render.
An upload is checked completely (size, type sniffed from content) before anything is stored.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from kb import selectors, services
from kb.embedding import knowledge_base_model, model_choices
from kb.forms import EmbeddingModelForm, FaqEntryForm, GlossaryEditForm, KnowledgeBaseForm
from kb.model_switch import SwitchBusy, SwitchRejected, model_switch_start
from kb.models import Document, FaqEntry, IndexVersion, KnowledgeBase
from kb.parsing import ParseError, sniff_upload
from kb.search import as_searched, glossary_terms, search
from kb.tuning import TuningRejected, tuning_start
from kefu.roles import KB_CREATE, KB_EDIT, KB_VIEW, bases_of, permission_required
from kefu.uploads import upload_refused

SHEET_TYPES = {"csv", "xlsx"}
# Document states as the upload list shows them (kb.models.Document.Status).
DOCUMENT_STATUSES = {
    "queued": gettext_lazy("queued"), "parsing": gettext_lazy("parsing"), "embedding": gettext_lazy("embedding"),
    "indexing": gettext_lazy("indexing"), "ready": gettext_lazy("ready"), "failed": gettext_lazy("failed"),
}


def upload_strings() -> dict:
    """The upload list's words (static/kb/upload.js fills the {placeholders}), in the active language."""
    return {
        "uploading": _("uploading"), "unexpected": _("Unexpected server reply."), "refused": _("Upload refused."),
        "duplicate": _("already in this knowledge base ({status})"), "queued": _("queued"),
        "network": _("network error"), "failed": _("failed: {error}"), "ready": _("ready · {chunks} chunks"),
        "statuses": {code: str(name) for code, name in DOCUMENT_STATUSES.items()},
    }


def over_limit(name: str, size: int | None = None) -> str:
    """The refusal of a file over KEFU_MAX_UPLOAD_BYTES, with its size when known."""
    limit = f"{settings.KEFU_MAX_UPLOAD_BYTES / 1e6:.0f}"
    if size is None:
        return _("%(name)s is over the %(limit)s MB limit.") % {"name": name, "limit": limit}
    return _("%(name)s: %(size)s MB is over the %(limit)s MB limit.") % {
        "name": name, "size": f"{size / 1e6:.1f}", "limit": limit}


@permission_required(KB_VIEW, to_change=(KB_CREATE,))
def kb_list(request: HttpRequest) -> HttpResponse:
    form = KnowledgeBaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            kb = services.knowledge_base_create(**form.cleaned_data)
        except ValueError as exc:
            form.add_error("name", str(exc))
        else:
            return redirect("kb:detail", slug=kb.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "kb/list.html", {"bases": selectors.knowledge_base_list().filter(pk__in=bases_of(request.user)), "form": form}, status=status)


@permission_required(KB_VIEW)
@require_GET
def kb_detail(request: HttpRequest, slug: str) -> HttpResponse:
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    return render(request, "kb/detail.html", detail_context(kb, model_form=model_form(kb)))


def detail_context(kb: KnowledgeBase, *, model_form: EmbeddingModelForm,
                   glossary_form: GlossaryEditForm | None = None) -> dict:
    """What the KB page shows (its switch and glossary forms as given: fresh, or bound with errors)."""
    return {
        "kb": kb, "documents": selectors.document_list(knowledge_base=kb),
        "gate": selectors.regression_gate_state(knowledge_base=kb),
        "tuning_runs": selectors.tuning_runs(knowledge_base=kb),
        "index_versions": selectors.index_versions(knowledge_base=kb), "model_form": model_form,
        "max_upload_mb": settings.KEFU_MAX_UPLOAD_BYTES / 1e6, "upload_strings": upload_strings(),
        "glossary": glossary_terms(kb.pk, kb.active_index_id),
        "glossary_form": glossary_form or GlossaryEditForm(initial={"action": "explain"}),
    }


def model_form(kb: KnowledgeBase, data=None) -> EmbeddingModelForm:
    """The switch form: the registered models and the base's tuned ones, its current model preselected."""
    current = knowledge_base_model(kb)
    choices = list(dict.fromkeys([current, *model_choices(kb.slug)]))
    return EmbeddingModelForm(data, choices=choices, current=current)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def kb_model(request: HttpRequest, slug: str) -> HttpResponse:
    """Switch the base to another embedding model: re-embedded in the background (ingest queue), the current
    index serving until the new one is ready. A bad choice: 400; another job of the base running: 409."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    form = model_form(kb, request.POST)
    if not form.is_valid():
        return render(request, "kb/detail.html", detail_context(kb, model_form=form), status=400)
    try:
        model_switch_start(knowledge_base=kb, name=form.cleaned_data["model"])
    except SwitchBusy:
        form.add_error("model", _("A tuning run or model switch of this base is already queued or running."))
        return render(request, "kb/detail.html", detail_context(kb, model_form=form), status=409)
    except SwitchRejected as exc:  # the base changed since the form was checked (another editor's switch)
        form.add_error("model", str(exc))
        return render(request, "kb/detail.html", detail_context(kb, model_form=form), status=400)
    messages.success(request, _("Switching to %(model)s: every chunk and FAQ question is embedded again in the "
                                "background; the current index serves until the new one is ready.")
                     % {"model": form.cleaned_data["model"]})
    return redirect("kb:detail", slug=slug)


GLOSSARY_DONE = {
    "explain": gettext_lazy("“%(term)s” is explained as “%(explanation)s” from the next question on."),
    "ignore": gettext_lazy("“%(term)s” is no longer explained in questions."),
    "undo": gettext_lazy("Your correction of “%(term)s” is undone: the base explains it as its texts do."),
}


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def kb_glossary(request: HttpRequest, slug: str) -> HttpResponse:
    """Correct the base's glossary: explain a term, stop explaining a mined one, or undo a correction. Bad input:
    400 with the page and the form's errors; nothing is stored."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    form = GlossaryEditForm(request.POST)
    if form.is_valid():
        action, term = form.cleaned_data["action"], form.cleaned_data["term"]
        try:
            if action == "explain":
                services.glossary_term_explain(knowledge_base=kb, term=term,
                                               explanation=form.cleaned_data["explanation"])
            elif action == "ignore":
                services.glossary_term_ignore(knowledge_base=kb, term=term)
            else:
                services.glossary_edit_undo(knowledge_base=kb, term=term)
        except services.GlossaryEditRejected as exc:
            form.add_error("term", str(exc))
        else:
            messages.success(request, GLOSSARY_DONE[action] % form.cleaned_data)
            return redirect(reverse("kb:detail", args=[slug]) + "#kb-glossary")
    context = detail_context(kb, model_form=model_form(kb), glossary_form=form)
    return render(request, "kb/detail.html", context, status=400)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def kb_tune(request: HttpRequest, slug: str) -> HttpResponse:
    """Start tuning the base's embedder on its own pairs (ingest queue); one run at a time."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    try:
        tuning_start(knowledge_base=kb)
    except TuningRejected as exc:
        messages.error(request, str(exc))
        return redirect("kb:detail", slug=slug)
    messages.success(request, _("Tuning started: the embedder trains on this base's own FAQ and section pairs."))
    return redirect("kb:detail", slug=slug)


@permission_required(KB_VIEW)
@require_GET
def tuning_progress(request: HttpRequest, slug: str) -> JsonResponse:
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    return JsonResponse({"runs": selectors.tuning_runs(knowledge_base=kb)})


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def document_upload(request: HttpRequest, slug: str) -> JsonResponse:
    """Multipart ``files``: all are checked first; one bad file rejects the request, nothing stored."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    refused = upload_refused(request)
    if refused:
        return JsonResponse({"error": refused, "errors": [refused]}, status=413)
    files = request.FILES.getlist("files")
    if not files:
        return JsonResponse({"error": _("Choose at least one file.")}, status=400)
    checked, errors, status = [], [], 400
    for upload in files:
        if upload.size > settings.KEFU_MAX_UPLOAD_BYTES:
            errors.append(over_limit(upload.name, upload.size))
            status = 413
            continue
        try:
            sniff_upload(upload, upload.name)  # its head and, for a ZIP, its directory: never read whole here
        except ParseError as exc:
            errors.append(f"{upload.name}: {exc}")
            continue
        checked.append((upload.name, upload))
    if errors:
        return JsonResponse({"error": " ".join(errors), "errors": errors}, status=status)
    results = [services.document_upload(knowledge_base=kb, filename=name, data=data) for name, data in checked]
    return JsonResponse({"documents": [
        {"id": r.document.pk, "title": r.document.title, "created": r.created, "status": r.document.status}
        for r in results
    ]}, status=201 if any(r.created for r in results) else 200)


@permission_required(KB_VIEW)
@require_GET
def document_progress(request: HttpRequest, slug: str) -> JsonResponse:
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    raw = request.GET.get("ids", "")
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        return JsonResponse({"error": _("ids must be comma-separated numbers")}, status=400)
    return JsonResponse({"documents": selectors.document_progress(knowledge_base=kb, ids=ids)})


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def document_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=pk, knowledge_base__slug=slug, knowledge_base__in=bases_of(request.user))
    services.document_delete(document=document)
    messages.success(request, _("Deleted %(title)s.") % {"title": document.title})
    return redirect("kb:detail", slug=slug)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def document_reindex(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    document = get_object_or_404(Document, pk=pk, knowledge_base__slug=slug, knowledge_base__in=bases_of(request.user))
    services.document_reindex(document=document)
    messages.success(request, _("Re-indexing %(title)s.") % {"title": document.title})
    return redirect("kb:detail", slug=slug)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def index_version_activate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """Activate anyway: the admin overrides the regression gate for a held index version."""
    version = get_object_or_404(IndexVersion, pk=pk, knowledge_base__slug=slug, knowledge_base__in=bases_of(request.user))
    if version.status != IndexVersion.Status.HELD:
        return HttpResponse(_("Only an index version held by the regression gate can be activated anyway."),
                            status=409, content_type="text/plain; charset=utf-8")
    services.index_version_activate_anyway(version=version)
    messages.success(request, _("Index v%(number)s is being rebuilt and will be activated without the gate.")
                     % {"number": version.number})
    return redirect("kb:detail", slug=slug)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def kb_reindex(request: HttpRequest, slug: str) -> HttpResponse:
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    services.knowledge_base_reindex(knowledge_base=kb)
    messages.success(request, _("The search index is being rebuilt."))
    return redirect("kb:detail", slug=slug)


@permission_required(KB_VIEW, to_change=(KB_EDIT,))
def faq_list(request: HttpRequest, slug: str) -> HttpResponse:
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    form = FaqEntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.faq_entry_create(knowledge_base=kb, **form.cleaned_data)
        messages.success(request, _("FAQ entry added."))
        return redirect("kb:faq", slug=slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "kb/faq.html", {
        "kb": kb, "entries": selectors.faq_entry_list(knowledge_base=kb), "form": form,
    }, status=status)


@permission_required(KB_VIEW, to_change=(KB_EDIT,))
def faq_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    entry = get_object_or_404(FaqEntry, pk=pk, knowledge_base__slug=slug, knowledge_base__in=bases_of(request.user))
    initial = {"question": entry.question, "answer": entry.answer, "alternatives": "\n".join(entry.alternatives)}
    form = FaqEntryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.faq_entry_update(entry=entry, **form.cleaned_data)
        messages.success(request, _("FAQ entry saved."))
        return redirect("kb:faq", slug=slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "kb/faq_edit.html", {"kb": entry.knowledge_base, "entry": entry, "form": form},
                  status=status)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def faq_delete(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    entry = get_object_or_404(FaqEntry, pk=pk, knowledge_base__slug=slug, knowledge_base__in=bases_of(request.user))
    services.faq_entry_delete(entry=entry)
    messages.success(request, _("FAQ entry deleted."))
    return redirect("kb:faq", slug=slug)


@permission_required(KB_VIEW, KB_EDIT)
@require_POST
def faq_import(request: HttpRequest, slug: str) -> HttpResponse:
    """An FAQ sheet (CSV/XLSX) becomes a document whose rows become FAQ entries."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    sheet = request.FILES.get("sheet")
    error = upload_refused(request)
    too_large = bool(error)
    if not error and sheet is None:
        error = _("Choose a CSV or XLSX file.")
    elif not error and sheet.size > settings.KEFU_MAX_UPLOAD_BYTES:
        error, too_large = over_limit(sheet.name), True
    elif not error:
        try:
            file_type = sniff_upload(sheet, sheet.name)
        except ParseError as exc:
            file_type, error = "", str(exc)
        if file_type and file_type not in SHEET_TYPES:
            error = _("%(name)s is not a CSV or XLSX sheet.") % {"name": sheet.name}
    if error:
        return render(request, "kb/faq.html", {
            "kb": kb, "entries": selectors.faq_entry_list(knowledge_base=kb), "form": FaqEntryForm(),
            "import_error": error,
        }, status=413 if too_large else 400)
    result = services.document_upload(knowledge_base=kb, filename=sheet.name, data=sheet)
    messages.success(request, (_("Importing %(name)s; its rows appear here when it is ready.") if result.created
                               else _("%(name)s was already imported.")) % {"name": sheet.name})
    return redirect("kb:faq", slug=slug)


@permission_required(KB_VIEW)
@require_GET
def kb_search(request: HttpRequest, slug: str) -> HttpResponse:
    """Try a query: the BM25, dense and fused hits of the query read as the chat reads a customer's question
    (spelling corrected to the base's words, its glossary terms explained), and that reading where it differs."""
    kb = get_object_or_404(bases_of(request.user), slug=slug)
    query = request.GET.get("q", "").strip()
    if len(query) > 1000:
        return render(request, "kb/search.html", {"kb": kb, "query": query[:1000],
                                                  "error": _("The query is too long.")}, status=400)
    searched = as_searched(kb.pk, kb.active_index_id, query) if query else ""
    result = search(kb, searched, kb.top_k) if query else None
    columns = [("BM25", result.bm25), (_("Dense"), result.dense), (_("Fused"), result.hybrid)] if result else []
    return render(request, "kb/search.html", {"kb": kb, "query": query, "columns": columns,
                                              "searched": searched if searched != query else ""})
