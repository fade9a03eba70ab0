"""Who may open the staff pages: signed-in, active users who are Django staff or in the ``staff`` group.

Customers and widget keys never reach these pages: the widget's key header is not a
login, so such a request is sent to the sign-in page like any anonymous visitor.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

STAFF_GROUP = "staff"


def is_staff_member(user) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_staff or user.groups.filter(name=STAFF_GROUP).exists()


def staff_required(view):
    """Anonymous → the staff sign-in page; signed in without the staff role → 403."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if not request.user.is_authenticated:
            from django.urls import reverse

            return redirect_to_login(request.get_full_path(), reverse("analytics:login"))
        if not is_staff_member(request.user):
            raise PermissionDenied("staff only")
        return view(request, *args, **kwargs)

    return checked
