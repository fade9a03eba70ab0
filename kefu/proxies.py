"""The client's address behind reverse proxies: X-Forwarded-For is read only from proxies the operator named.

Any client can write X-Forwarded-For, so trusting it everywhere would let one client rotate
addresses past the per-IP rate limit; ignoring it everywhere makes every customer behind a
proxy one address. ``KEFU_TRUSTED_PROXIES`` lists the proxies' networks: when the socket
peer is in one of them, the client is the right-most forwarded address that is not itself a
trusted proxy (the left part of the header is whatever the client sent).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def proxy_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


def parsed_address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request: HttpRequest) -> str:
    """The socket peer, or the client a trusted proxy forwarded the request for."""
    peer = request.META.get("REMOTE_ADDR", "") or "unknown"
    proxies = proxy_networks(tuple(settings.KEFU_TRUSTED_PROXIES))
    if not is_trusted(parsed_address(peer), proxies):
        return peer
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = parsed_address(hop)
        if address is None:
            return peer  # a hop the proxy did not write: nothing left of it can be believed
        if not is_trusted(address, proxies):
            return str(address)
    return peer


def forwarded_by_unknown_proxy(request: HttpRequest) -> bool:
    """The request names a forwarded client but came from a peer not in KEFU_TRUSTED_PROXIES.

    Such a peer is a proxy nobody declared (often on loopback): its address says nothing of the client.
    """
    if not request.META.get("HTTP_X_FORWARDED_FOR"):
        return False
    return not is_trusted(parsed_address(request.META.get("REMOTE_ADDR", "")),
                          proxy_networks(tuple(settings.KEFU_TRUSTED_PROXIES)))
