"""Sign-in throttling: django-axes' lockout check in front of Django's own backend."""

from __future__ import annotations

import ipaddress

from axes.backends import AxesStandaloneBackend

from chat.pipeline.guard import rate_limit_client
from kefu.proxies import client_address


class LoginThrottleBackend(AxesStandaloneBackend):
    """axes' check for sign-ins over HTTP. A call without a request is no sign-in over the network (a test
    client's ``login()``, a management command) and goes on to the next backend instead of failing."""

    def authenticate(self, request, username: str | None = None, password: str | None = None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def login_client_address(request) -> str | None:
    """The client address sign-in failures are counted for (``AXES_CLIENT_IP_CALLABLE``).

    Read as for rate limits (X-Forwarded-For only from ``KEFU_TRUSTED_PROXIES``), an IPv6 client as the first
    address of its /64 — one host owns the whole /64, so rotating inside it is still one client — and None
    when the request has no address (a test client's ``force_login``): axes stores it in an address column.
    """

    client = rate_limit_client(client_address(request))
    try:
        return str(ipaddress.ip_network(client, strict=False).network_address)
    except ValueError:
        return None
