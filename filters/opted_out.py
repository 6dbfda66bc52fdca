"""opted_out: the site or the person said no (opt-out list, robots.txt, X-Robots-Tag, a takedown purge)."""

from curate.filters.base import Filter, literal

OPT_OUT_CLASSES = ("opted_out", "robots_disallowed", "x_robots_tag", "takedown")


class OptedOut(Filter):
    reason = "opted_out"
    always = True

    def drop_when(self) -> str:
        return (
            f"s.status <> 'success' AND s.error_class IN ({', '.join(literal(c) for c in OPT_OUT_CLASSES)})"
        )
