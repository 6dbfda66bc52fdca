"""Which destinations the downloader may connect to.

A URL list is untrusted input: without these checks a crafted row (or a redirect) could make the
downloader fetch http://169.254.169.254/ (cloud credentials) or an admin page on the local network.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

ALLOWED_SCHEMES = ("http", "https")


def address_problem(ip: str, allowed: tuple[str, ...] = ()) -> str | None:
    """Why an address must not be connected to (loopback, private, ...), or None if it is public.

    `allowed` lists networks (CIDR) that are permitted anyway, e.g. an internal mirror.
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "unparseable address"
    mapped = getattr(addr, "ipv4_mapped", None)
    if mapped is not None:
        addr = mapped
    if any(addr in ipaddress.ip_network(net, strict=False) for net in allowed):
        return None
    for name in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(addr, f"is_{name}"):
            return name.replace("_", "-")
    if not addr.is_global:
        return "non-global"
    return None


def parse_url(url: str | None) -> SplitResult | None:
    """The split URL if it is an absolute http(s) URL with a host, else None."""
    if not url or not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        return None
    return parts
