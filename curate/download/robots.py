"""robots.txt rules (RFC 9309) and the X-Robots-Tag header.

urllib.robotparser takes the first matching rule and knows no `*` / `$` wildcards; RFC 9309 says the
longest match wins (allow on a tie), so this small matcher implements that instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least 500 KiB


@dataclass
class RobotsRules:
    """The allow/disallow rules of the group that applies to one product token."""

    rules: list[tuple[bool, str]] = field(default_factory=list)  # (allow, path pattern)
    disallow_all: bool = False  # robots.txt unreachable (5xx): RFC 9309 2.3.1.4 says assume complete disallow

    def allowed(self, path: str) -> bool:
        """Longest matching pattern decides; allow wins a tie; no match means allowed."""
        if self.disallow_all:
            return False
        path = _normalize(path or "/")
        best_len, best_allow = -1, True
        for allow, pattern in self.rules:
            if not pattern:
                continue  # an empty Disallow: allows everything
            if _match(pattern, path):
                n = len(pattern)
                if n > best_len or (n == best_len and allow):
                    best_len, best_allow = n, allow
        return best_allow


def parse_robots(text: str, token: str) -> RobotsRules:
    """Rules for `token` (case-insensitive product token), else for `*`; groups naming it are merged."""
    token = token.lower()
    groups: list[tuple[list[str], list[tuple[bool, str]]]] = []
    agents: list[str] = []
    rules: list[tuple[bool, str]] = []
    in_rules = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                groups.append((agents, rules))
                agents, rules, in_rules = [], [], False
            agents.append(value.lower())
        elif key in ("allow", "disallow") and agents:
            in_rules = True
            rules.append((key == "allow", value))
    if agents:
        groups.append((agents, rules))
    mine = [r for a, rs in groups if token in a for r in rs]
    if any(token in a for a, _ in groups):
        return RobotsRules(mine)
    return RobotsRules([r for a, rs in groups if "*" in a for r in rs])


def _normalize(path: str) -> str:
    """Percent-encode consistently so that /a%7Eb and /a~b compare equal (RFC 9309 2.2.2)."""
    return quote(unquote(path), safe="/?=&;:@!$'()*+,-._~%")


_PATTERN_CACHE: dict[str, re.Pattern] = {}


def _match(pattern: str, path: str) -> bool:
    regex = _PATTERN_CACHE.get(pattern)
    if regex is None:
        anchored = pattern.endswith("$")
        body = _normalize(pattern[:-1] if anchored else pattern)
        regex = re.compile(".*".join(re.escape(part) for part in body.split("*")) + ("$" if anchored else ""))
        if len(_PATTERN_CACHE) < 10_000:
            _PATTERN_CACHE[pattern] = regex
    return regex.match(path) is not None


def x_robots_blocked(values: list[str], token: str, blocked: tuple[str, ...]) -> str | None:
    """The first blocked directive in X-Robots-Tag header values that applies to us, else None.

    A value may name an agent ("otherbot: noindex"); such directives apply only to that agent.
    """
    token = token.lower()
    blocked_set = {b.lower() for b in blocked}
    for value in values:
        agent = None
        head, sep, rest = value.partition(":")
        if sep and "," not in head and head.strip().lower() not in blocked_set and " " not in head.strip():
            agent, value = head.strip().lower(), rest
        if agent is not None and agent not in (token, "*"):
            continue
        for directive in value.split(","):
            d = directive.strip().lower()
            if d in blocked_set:
                return d
    return None
