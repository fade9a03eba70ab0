"""Analytics HTTP views: the Prometheus scrape endpoint and the staff pages (dashboard, gaps, inbox).

Staff pages are thin: parse the filters (a bad one is a 400 here), call one selector or
service, render. Every staff page names the permissions it needs (:mod:`analytics.access`, roles in :mod:`kefu.roles`).
"""

from __future__ import annotations

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.views import LoginView
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from analytics import metrics, services
from analytics.access import dashboard_required, inbox_required, knowledge_change_required
from analytics.filters import DashboardFilter, FilterError, dashboard_filter_parse
from analytics.rollups import rollup_watermark
from analytics.selectors.conversations import (
    down_rated_answers,
    handoff_inbox,
    source_choices,
    taken_offers,
    transcript,
)
from analytics.selectors.dashboard import dashboard_data, filter_choices
from analytics.selectors.experts import expert_load
from analytics.selectors.gaps import knowledge_gaps, top_questions
from analytics.selectors.languages import language_mix
from chat.models import Conversation
from chat.staff_replies import StaffReplyRejected
from kefu.roles import CONVERSATIONS_VIEW, DASHBOARD_VIEW, KB_VIEW, base_reached, bases_of, is_scoped


@never_cache
@require_GET
def prometheus_metrics(request):
    if not metrics.may_scrape(request):
        return JsonResponse({"error": "forbidden", "message": "metrics need the bearer token or an allowed network"},
                            status=403)
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


class SignIn(LoginView):
    """The one staff sign-in, for ``/staff/``, ``/kb/`` and ``/admin/`` (django-axes throttles it)."""

    template_name = "registration/login.html"

    def get_default_redirect_url(self) -> str:
        """Without ``next``: the first console page the user's roles open (a support agent has no dashboard)."""
        user = self.request.user
        for permission, url_name in ((DASHBOARD_VIEW, "analytics:dashboard"), (CONVERSATIONS_VIEW, "analytics:inbox"),
                                     (KB_VIEW, "kb:list")):
            if user.has_perm(permission):
                return reverse(url_name)
        return reverse("analytics:dashboard")


def page(request, template: str, flt: DashboardFilter | None, **context) -> HttpResponse:
    """Render a staff page with the filter form's choices (the bases the user reaches) and the current filters."""
    bases, keys = filter_choices()
    if is_scoped(request.user):
        reached = set(bases_of(request.user).values_list("pk", flat=True))
        bases, keys = [b for b in bases if b[0] in reached], [k for k in keys if k[2] in reached]
    return render(request, template, {"filter": flt, "bases": bases, "keys": keys,
                                      "query": flt.query_string() if flt else "", **context})


def bad_request(request, message: str) -> HttpResponse:
    return render(request, "analytics/error.html", {"message": message}, status=400)


def parsed_filter(request) -> DashboardFilter:
    """The filters; a user scoped to some bases sees one of them (the first when none is chosen)."""
    flt = dashboard_filter_parse(request.GET)
    if not is_scoped(request.user):
        return flt
    if flt.knowledge_base_id is None:
        first = bases_of(request.user).order_by("name").values_list("pk", flat=True).first()
        if first is None:
            raise FilterError(_("your role reaches no knowledge base"))
        return replace(flt, knowledge_base_id=first)
    if not base_reached(request.user, flt.knowledge_base_id):
        raise FilterError(_("no such knowledge base"))
    return flt


def conversation_reached(request, conversation_id: str) -> bool:
    """The conversation exists and its base is one the user reaches."""
    base_id = Conversation.objects.filter(public_id=conversation_id).values_list("knowledge_base_id", flat=True)
    return base_reached(request.user, base_id.first())


def base_id_reached(request, raw: str) -> bool:
    return raw.isdigit() and base_reached(request.user, int(raw))


@never_cache
@dashboard_required
@require_GET
def dashboard(request):
    try:
        flt = parsed_filter(request)
    except FilterError as error:
        return bad_request(request, str(error))
    services.dashboard_rollups_refresh()
    data, experts = dashboard_data(flt), expert_load(flt)
    charts = [chart.as_dict() for chart in (*data.charts, *experts.charts) if chart.has_data]
    return page(request, "analytics/dashboard.html", flt, data=data, experts=experts, charts=charts,
                language_mix=language_mix(flt), rolled_up_at=rollup_watermark())


@never_cache
@dashboard_required
@require_GET
def feedback(request):
    try:
        flt = parsed_filter(request)
    except FilterError as error:
        return bad_request(request, str(error))
    answers = down_rated_answers(flt)
    return page(request, "analytics/feedback.html", flt, answers=answers, taken=taken_offers(flt),
                sources=source_choices({a.knowledge_base_id for a in answers if not a.resolved_source}))


@never_cache
@dashboard_required
@require_GET
def gaps(request):
    try:
        flt = parsed_filter(request)
    except FilterError as error:
        return bad_request(request, str(error))
    return page(request, "analytics/gaps.html", flt, groups=knowledge_gaps(flt))


@knowledge_change_required
@require_POST
def gap_faq(request):
    """One knowledge-gap group → a new FAQ entry (the staff member wrote the answer)."""
    kb_id = request.POST.get("knowledge_base", "")
    question, answer = request.POST.get("question", "").strip(), request.POST.get("answer", "").strip()
    if not base_id_reached(request, kb_id) or not question or not answer:
        return bad_request(request, _("An FAQ entry needs a knowledge base, a question and an answer."))
    try:
        entry = services.gap_faq_create(knowledge_base_id=int(kb_id), question=question, answer=answer,
                                        alternatives=request.POST.getlist("alternative"))
    except services.NotFound as error:
        return bad_request(request, str(error))
    messages.success(request, _("FAQ entry #%(id)s added; the knowledge base is being re-indexed.") % {"id": entry.pk})
    return redirect(reverse("analytics:gaps") + "?" + request.POST.get("query", ""))


@knowledge_change_required
@require_POST
def feedback_resolve(request):
    """A down-rated question → an evaluation case with the source a staff member says is right (and, for an FAQ
    entry, one more of its phrasings)."""
    kb_id, question = request.POST.get("knowledge_base", ""), request.POST.get("question", "").strip()
    source = request.POST.get("source", "").strip()
    if not base_id_reached(request, kb_id) or not question or not source:
        return bad_request(request, _("Resolving a down-rated answer needs its knowledge base, question and the right source."))
    try:
        case = services.feedback_resolve(knowledge_base_id=int(kb_id), question=question, source=source,
                                         origin=request.POST.get("origin", "feedback"))
    except services.NotFound as error:
        return bad_request(request, str(error))
    if case is not None and case.faq_entry_id:
        messages.success(request, _("Resolved: the question joins the knowledge base's evaluation set and the FAQ "
                                    "entry's phrasings; the knowledge base is being re-indexed."))
    else:
        messages.success(request, _("Resolved: the question joins the knowledge base's evaluation set."))
    return redirect(reverse("analytics:feedback") + "?" + request.POST.get("query", ""))


@never_cache
@dashboard_required
@require_GET
def questions(request):
    try:
        flt = parsed_filter(request)
    except FilterError as error:
        return bad_request(request, str(error))
    services.dashboard_rollups_refresh()
    return page(request, "analytics/questions.html", flt, groups=top_questions(flt))


@never_cache
@inbox_required
@require_GET
def inbox(request):
    try:
        flt = parsed_filter(request)
    except FilterError as error:
        return bad_request(request, str(error))
    return page(request, "analytics/inbox.html", flt, items=handoff_inbox(knowledge_base_id=flt.knowledge_base_id))


@never_cache
@inbox_required
@require_GET
def conversation(request, conversation_id: str):
    if not conversation_reached(request, conversation_id):
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)
    found = transcript(conversation_id=conversation_id)
    if found is None:
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)
    return page(request, "analytics/conversation.html", None, transcript=found)


@inbox_required
@require_POST
def conversation_reply(request, conversation_id: str):
    if not conversation_reached(request, conversation_id):
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)

    try:
        services.inbox_reply(conversation_id=conversation_id, text=request.POST.get("text", ""))
    except services.NotFound:
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)
    except StaffReplyRejected as error:
        return bad_request(request, str(error))
    messages.success(request, _("Reply sent."))
    return redirect("analytics:conversation", conversation_id=conversation_id)


@inbox_required
@require_POST
def conversation_close(request, conversation_id: str):
    if not conversation_reached(request, conversation_id):
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)
    try:
        services.inbox_close(conversation_id=conversation_id)
    except services.NotFound:
        return render(request, "analytics/error.html", {"message": _("No such conversation.")}, status=404)
    messages.success(request, _("Conversation closed."))
    return redirect("analytics:inbox")
