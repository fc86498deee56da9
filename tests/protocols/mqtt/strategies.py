"""Hypothesis strategies for MQTT topic names and filters (MQTT 3.1.1 §4.7).

Levels come from a tiny alphabet (``a``, ``b``, ``$``, the empty level) so that
random names and filters often match each other, which is where bugs hide.
"""

from __future__ import annotations

from hypothesis import strategies as st

levels = st.text(alphabet="ab$", max_size=2)

#: Topic names: no wildcards, at least one character (§4.7.3).
topic_names = st.lists(levels, min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    """Valid filters: ``+`` anywhere as a whole level, ``#`` only as the last (§4.7.1),
    never empty (§4.7.3)."""
    body = draw(st.lists(levels | st.just("+"), max_size=4))
    if not body or draw(st.booleans()):
        body.append("#")
    return "/".join(body) or "+"


@st.composite
def widened(draw: st.DrawFn, topic_filter: str) -> str:
    """A filter at least as wide as ``topic_filter`` in shape: levels made ``+``, a ``#`` tail."""
    parts = topic_filter.split("/")
    parts = [part if part == "#" or not draw(st.booleans()) else "+" for part in parts]
    cut = draw(st.integers(0, len(parts)))
    return "/".join([*parts[:cut], "#"]) if cut < len(parts) else "/".join(parts)


@st.composite
def names_for(draw: st.DrawFn, topic_filter: str) -> str:
    """A topic name shaped by ``topic_filter``: ``+`` and ``#`` replaced by random levels."""
    parts: list[str] = []
    for part in topic_filter.split("/"):
        if part == "#":
            parts += draw(st.lists(levels, max_size=2))
        else:
            parts.append(draw(levels) if part == "+" else part)
    return "/".join(parts) or "a"
