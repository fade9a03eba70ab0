"""Who may open the staff pages under ``/staff/``: the roles of :mod:`kefu.roles`, one model with ``/kb/``.

Customers and widget keys never reach these pages: the widget's key header is not a
login, so such a request is sent to the sign-in page like any anonymous visitor.

- the dashboard and its reports (questions, gaps, feedback): ``analytics.view_dashboard``
  (Analyst, KB editor);
- turning a gap or a down-rated answer into a FAQ entry or an evaluation case changes the
  knowledge base: ``kb.change_knowledgebase`` too (KB editor);
- the hand-off inbox and transcripts: ``chat.view_conversation`` (every role); replying and closing:
  ``chat.change_conversation`` (Support agent).
"""

from __future__ import annotations

from kefu.roles import (
    CONVERSATIONS_HANDLE,
    CONVERSATIONS_VIEW,
    DASHBOARD_VIEW,
    KB_EDIT,
    is_staff_member,
    permission_required,
)

dashboard_required = permission_required(DASHBOARD_VIEW)
knowledge_change_required = permission_required(DASHBOARD_VIEW, KB_EDIT)
inbox_required = permission_required(CONVERSATIONS_VIEW, to_change=(CONVERSATIONS_HANDLE,))

__all__ = ["dashboard_required", "inbox_required", "is_staff_member", "knowledge_change_required"]
