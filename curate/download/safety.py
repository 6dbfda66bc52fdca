"""Which destinations the downloader may connect to: one rule, `address_problem`, for every connection.

A URL list is untrusted input: without this rule a crafted row (or a redirect) could make the downloader
fetch http://169.254.169.254/ (cloud credentials) or an admin page on the local network. Every connection
the downloader opens (image, robots.txt, each redirect hop) asks `address_problem` about the address it
resolved and again about the peer it reached.

Allowing is explicit and scoped: `allowed` names networks (CIDR). Link-local and cloud-metadata addresses
are refused even inside an allowed network unless an entry names the address one by one (/32, /128).
IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by the IPv4 inside them.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

ALLOWED_SCHEMES = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance-metadata and host-agent endpoints of the big clouds: credentials live behind them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack instance metadata
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS VPC DNS resolver
        "169.254.0.23",  # Tencent Cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer (host agent)
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::253",  # AWS VPC DNS resolver over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
    )
)

# What `allow_private_network = true` (a deprecated shorthand) stands for: loopback and private ranges.
# Link-local and metadata addresses are never in it (they must be named one by one).
PRIVATE_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "fec0::/10",
)

_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: any RFC 6052 prefix length inside
# RFC 6052 2.2: where the IPv4 bits sit for each prefix length (bits 64-71, the "u" octet, stay zero).
_RFC6052_PIECES = {48: ((48, 16), (72, 16)), 56: ((56, 8), (72, 24)), 64: ((72, 32),), 96: ((96, 32),)}
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def address_problem(ip: str, allowed: tuple[str, ...] = ()) -> str | None:
    """Why the downloader must not connect to `ip` (e.g. "loopback", "cloud-metadata"), or None if it may.

    `allowed`: CIDR networks reachable although not public (an internal mirror, a local test server).
    """
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "unparseable address"
    nets = _networks(allowed)
    if _named(addr, nets):
        return None
    inner = embedded_ipv4(addr)
    if inner is None:
        return _problem(addr, nets)
    if not inner:
        return f"{addr} is a NAT64 address with no valid IPv4 address inside"
    for v4 in inner:
        problem = _problem(v4, nets)
        if problem:
            return f"{problem} ({v4} inside {addr})"
    return None


def embedded_ipv4(addr: Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries (IPv4-mapped, 6to4, NAT64), else None.

    A NAT64 address in the local-use prefix may use any RFC 6052 prefix length: every reading whose
    reserved bits are zero is returned, and each must pass.
    """
    if addr.version == 4:
        return None
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr in _NAT64_WELL_KNOWN:
        return [ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)]
    if addr in _NAT64_LOCAL:
        return _rfc6052_readings(int(addr))
    return None


def _rfc6052_readings(value: int) -> list[ipaddress.IPv4Address]:
    out = []
    for plen, pieces in _RFC6052_PIECES.items():
        start, width = pieces[-1]
        suffix_bits = 128 - (start + width)
        if value & ((1 << suffix_bits) - 1):
            continue  # the suffix after the IPv4 must be zero
        if plen < 96 and (value >> 56) & 0xFF:
            continue  # the "u" octet (bits 64-71) must be zero
        v4 = 0
        for start, width in pieces:
            v4 = (v4 << width) | ((value >> (128 - start - width)) & ((1 << width) - 1))
        out.append(ipaddress.IPv4Address(v4))
    return out


def _named(addr: Address, nets: tuple[Network, ...]) -> bool:
    """True when an allow entry names exactly this address (the only way to allow link-local/metadata)."""
    return any(net.num_addresses == 1 and addr in net for net in nets)


def _problem(addr: Address, nets: tuple[Network, ...]) -> str | None:
    if _named(addr, nets):
        return None
    if addr in METADATA_ADDRESSES:
        return "cloud-metadata"
    if addr.is_link_local:
        return "link-local"
    if any(addr.version == net.version and addr in net for net in nets):
        return None
    for name in ("loopback", "multicast", "unspecified", "reserved", "private"):
        if getattr(addr, f"is_{name}"):
            return name
    if addr.version == 6 and addr in _SITE_LOCAL:
        return "site-local"
    if not addr.is_global:
        return "non-global"
    return None


@lru_cache(maxsize=64)
def _networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in allowed)


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
