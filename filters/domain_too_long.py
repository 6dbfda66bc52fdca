"""domain_too_long: the URL's host name has more than `max_domain_chars` characters (LAION-5B: 60).

The host is what Python's `urlparse(url).hostname` returns (LAION's parser): the authority after
"scheme://" without user info, port or IPv6 brackets. Computed in SQL from the shard's `url` column.
"""

from typing import ClassVar

from curate.filters.base import Filter, Settings

_AUTHORITY = r"regexp_extract(coalesce(s.url, ''), '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)', 1)"
_HOSTPORT = f"regexp_replace({_AUTHORITY}, '^.*@', '')"  # user info ends at the last "@"
# As urlparse: an IPv6 literal is what the brackets hold, any other host ends at the first ":".
HOST_SQL = (
    f"CASE WHEN starts_with({_HOSTPORT}, '[') THEN regexp_extract({_HOSTPORT}, '^\\[([^]]*)\\]', 1) "
    f"ELSE split_part({_HOSTPORT}, ':', 1) END"
)


class DomainTooLong(Filter):
    reason = "domain_too_long"
    settings: ClassVar[Settings] = {
        "max_domain_chars": (int, "drop URLs whose host name is longer than this (LAION-5B: 60)"),
    }

    def drop_when(self) -> str:
        return f"length({HOST_SQL}) > {int(self.config['max_domain_chars'])}"
