"""Who may do what on the staff pages: three roles, each a Django group holding Django permissions.

One model for ``/kb/`` and ``/staff/``: a view names the permissions it needs
(:func:`permission_required`), a role is only a named set of them, and Django's own
``user.has_perms`` decides (a superuser has every permission; an inactive user none).
``is_staff`` only opens ``/admin/``.

- **KB editor** — knowledge bases: create them, upload and delete documents, edit FAQ entries,
  re-index, tune; and the reports that say what to fix (gaps, feedback, their transcripts), where a
  gap or a down-rated answer becomes a FAQ entry or an evaluation case.
- **Support agent** — the hand-off inbox: read conversations, reply, close.
- **Analyst** — the dashboard and its reports, transcripts and the knowledge bases, read-only.

The groups are created by ``analytics`` migration 0005 and kept (never narrowed) after every
``migrate`` or ``flush`` by :func:`roles_ensure`; operators give a person a role in ``/admin/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.urls import reverse

KB_VIEW = "kb.view_knowledgebase"
KB_CREATE = "kb.add_knowledgebase"
KB_EDIT = "kb.change_knowledgebase"
CONVERSATIONS_VIEW = "chat.view_conversation"
CONVERSATIONS_HANDLE = "chat.change_conversation"
DASHBOARD_VIEW = "analytics.view_dashboard"

KB_EDITOR = "KB editor"
SUPPORT_AGENT = "Support agent"
ANALYST = "Analyst"
ROLES: dict[str, tuple[str, ...]] = {
    KB_EDITOR: (KB_VIEW, KB_CREATE, KB_EDIT, DASHBOARD_VIEW, CONVERSATIONS_VIEW),
    SUPPORT_AGENT: (CONVERSATIONS_VIEW, CONVERSATIONS_HANDLE),
    ANALYST: (DASHBOARD_VIEW, KB_VIEW, CONVERSATIONS_VIEW),
}
STAFF_PERMISSIONS = frozenset(p for permissions in ROLES.values() for p in permissions)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def roles_ensure(apps=None) -> None:
    """Create the role groups, each with at least its permissions (``apps``: a migration's historical registry).

    Permissions missing from the database (a fresh database before post_migrate made them) are skipped here
    and added by the next call; a permission an operator added to a group is kept.
    """
    apps = apps or django_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, permissions in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(*permissions_of(permission_model, permissions))


def permissions_of(permission_model, names: Iterable[str]) -> list:
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        found += list(permission_model.objects.filter(content_type__app_label=app_label, codename=codename))
    return found


def roles_ensure_after_migrate(sender, **kwargs) -> None:
    """post_migrate: the roles exist after every migrate and flush (tests flush between transactional tests)."""
    if kwargs.get("using", "default") == "default":
        roles_ensure()


def is_staff_member(user) -> bool:
    """Signed in, active, and holding any staff permission (a role, or a superuser)."""
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or bool(user.get_all_permissions() & STAFF_PERMISSIONS)


def permission_required(*permissions: str, to_change: tuple[str, ...] = ()) -> Callable:
    """A staff view that needs ``permissions`` — plus ``to_change`` for a POST (or any unsafe method).

    Anonymous → the staff sign-in page; signed in without them → 403.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not request.user.is_authenticated:
                # lazy: kb.models imports this module, and auth's views import its models
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path(), reverse("analytics:login"))
            needed = permissions + (to_change if request.method not in SAFE_METHODS else ())
            if not (request.user.is_active and request.user.has_perms(needed)):
                raise PermissionDenied("your role does not allow this")
            return view(request, *args, **kwargs)

        return checked

    return decorator


# --- per-base scoping ---------------------------------------------------------------------------------------
# A base with no ``staff_groups`` is reached by every role member; a base with some only by members of one of
# them (and superusers). The role still decides what may be done; the scope decides on which bases.

def bases_of(user):
    """The knowledge bases ``user``'s roles reach (a queryset)."""
    from kb.models import KnowledgeBase  # lazy: kb.models imports this module

    bases = KnowledgeBase.objects.all()
    if user.is_superuser:
        return bases
    return bases.filter(Q(staff_groups__isnull=True) | Q(staff_groups__in=user.groups.all())).distinct()


def is_scoped(user) -> bool:
    """Some base is out of ``user``'s reach (otherwise nothing needs filtering)."""
    from kb.models import KnowledgeBase  # lazy: kb.models imports this module

    if user.is_superuser or not KnowledgeBase.staff_groups.through.objects.exists():
        return False
    return bases_of(user).count() < KnowledgeBase.objects.count()


def base_reached(user, knowledge_base_id: int | None) -> bool:
    return knowledge_base_id is not None and bases_of(user).filter(pk=knowledge_base_id).exists()
