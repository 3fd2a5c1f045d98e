"""Draws one trace as a terminal waterfall: a line per span, indented by parent, a time bar.

What the console exporter prints when a trace's local root ends: a newcomer sees the request's
shape (which call took the time, which one failed) without a backend. Pure text in, text out:
the buffering of spans per trace lives in the console exporter. Loaded on the first export, not
at start-up.

A span whose parent ran in another process hangs under a remote-parent marker; a span whose
local parent is not in the output (still open, or printed earlier) under a missing-parent one.
Everything that came from the application (names, attribute values, descriptions) is printed
with its control characters escaped: a span name cannot move the cursor or forge a line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from telemetry_run.sdk.trace.api import SpanKind, StatusCode

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["BAR_WIDTH", "Glyphs", "format_duration", "render_trace"]

BAR_WIDTH: Final = 40
_NAME_WIDTH: Final = 48  # longer tree-and-name cells are cut with an ellipsis
_MAX_INDENT: Final = 10  # deeper spans keep the last levels of their tree prefix
_NOTE_WIDTH: Final = 60  # a status description is cut to this

# C0 (tab aside), DEL and C1 escaped: the line stays one line and no escape sequence gets out.
_ESCAPES: Final = {c: f"\\x{c:02x}" for c in (*range(32), *range(0x7F, 0xA0)) if c != 9} | {
    10: "\\n",
    13: "\\r",
}


def _clean(text: str) -> str:
    return text.translate(_ESCAPES)


class Glyphs:
    """The characters a waterfall is drawn with: box drawing, or ASCII for a stream that cannot
    encode them (``LANG=C``, a Windows code page)."""

    __slots__ = ("bar", "branch", "ellipsis", "error", "last", "micro", "missing", "pipe", "remote")

    def __init__(self, unicode: bool = True) -> None:
        if unicode:
            self.branch, self.last, self.pipe = "├─ ", "└─ ", "│  "
            self.bar, self.ellipsis, self.error, self.micro = "█", "…", "✗ ERROR", "µs"
            self.remote, self.missing = "⇠ remote parent", "? parent"
        else:
            self.branch, self.last, self.pipe = "+- ", "`- ", "|  "
            self.bar, self.ellipsis, self.error, self.micro = "#", "...", "x ERROR", "us"
            self.remote, self.missing = "<- remote parent", "? parent"


UNICODE: Final = Glyphs(True)

_RESET: Final = "\x1b[0m"
_DIM: Final = "\x1b[2m"
_BOLD: Final = "\x1b[1m"
_RED: Final = "\x1b[31m"
_KIND_COLOURS: Final = {
    SpanKind.SERVER: "\x1b[32m",  # green
    SpanKind.CLIENT: "\x1b[36m",  # cyan
    SpanKind.INTERNAL: "\x1b[34m",  # blue
    SpanKind.PRODUCER: "\x1b[35m",  # magenta
    SpanKind.CONSUMER: "\x1b[35m",
}

# The attributes that say what a span did, by the semantic conventions' names (old names
# second, for spans made by other instrumentation): at most three are shown.
_KEY_ATTRIBUTES: Final = (
    ("rpc", ("rpc.method",)),
    ("route", ("http.route",)),
    ("db", ("db.operation.name", "db.operation")),
    ("status", ("http.response.status_code", "http.status_code")),
    ("grpc_status", ("rpc.grpc.status_code",)),
)


def format_duration(nanoseconds: int, glyphs: Glyphs = UNICODE) -> str:
    """``850 µs``, ``12.4 ms``, ``3.21 s``: three significant figures or so, one unit."""
    if nanoseconds < 1_000_000:
        return f"{nanoseconds / 1e3:.0f} {glyphs.micro}"
    if nanoseconds < 1_000_000_000:
        return f"{nanoseconds / 1e6:.1f} ms"
    return f"{nanoseconds / 1e9:.2f} s"


def _key_attributes(span: ReadableSpan) -> list[str]:
    attributes: Mapping[str, object] = span.attributes
    shown = []
    for label, keys in _KEY_ATTRIBUTES:
        for key in keys:
            value = attributes.get(key)
            if value is not None:
                if label == "rpc":
                    service = attributes.get("rpc.service")
                    value = f"{service}/{value}" if service else value
                shown.append(f"{label}={_clean(str(value))}")
                break
    return shown[:3]


def _why(span: ReadableSpan) -> str:
    """The status description, else the first recorded exception (``RuntimeError: ...``)."""
    if span.status.description:
        return span.status.description
    for event in span.events:
        if event.name == "exception":
            kind = event.attributes.get("exception.type")
            message = event.attributes.get("exception.message")
            return ": ".join(str(part) for part in (kind, message) if part)
    return ""


class _Node:
    """A span, or a marker standing in for a parent that is not in the output."""

    __slots__ = ("children", "marker", "span")

    def __init__(self, span: ReadableSpan | None, marker: str = "") -> None:
        self.span = span
        self.marker = marker
        self.children: list[_Node] = []


def _tree(spans: Sequence[ReadableSpan], glyphs: Glyphs) -> list[_Node]:
    """The top-level nodes, children in start order; every span is in the tree exactly once."""
    ordered = sorted(range(len(spans)), key=lambda i: (spans[i].start_time, i))
    nodes = {spans[i].context.span_id: _Node(spans[i]) for i in ordered}
    tops: list[_Node] = []
    markers: dict[tuple[int, bool], _Node] = {}
    for i in ordered:
        span = spans[i]
        node = nodes[span.context.span_id]
        if node.span is not span:  # a second span with the same id: shown at the top
            node = _Node(span)
            tops.append(node)
            continue
        parent = span.parent
        if parent is None or parent.span_id == span.context.span_id:
            tops.append(node)
        elif parent.span_id in nodes:
            nodes[parent.span_id].children.append(node)
        else:
            key = (parent.span_id, parent.is_remote)
            marker = markers.get(key)
            if marker is None:
                label, where = (
                    (glyphs.remote, "another process")
                    if parent.is_remote
                    else (glyphs.missing, "not in this output")
                )
                marker = markers[key] = _Node(None, f"{label} {parent.span_id:016x} ({where})")
                tops.append(marker)
            marker.children.append(node)
    return tops


def _walk(
    tops: list[_Node], glyphs: Glyphs, every: Sequence[ReadableSpan]
) -> list[tuple[str, _Node]]:
    """(tree prefix, node) depth first; iterative, so a deep chain cannot hit the recursion
    limit; spans a parent-id cycle keeps out of reach are shown at the top level."""
    out: list[tuple[str, _Node]] = []
    seen: set[int] = set()

    def visit(roots: list[_Node]) -> None:
        stack: list[tuple[_Node, tuple[bool, ...]]] = [(n, ()) for n in reversed(roots)]
        while stack:
            node, lasts = stack.pop()
            if node.span is not None:
                if id(node.span) in seen:
                    continue
                seen.add(id(node.span))
            out.append((_prefix(lasts, glyphs), node))
            count = len(node.children)
            for position in range(count - 1, -1, -1):
                stack.append((node.children[position], (*lasts, position == count - 1)))

    visit(tops)
    if len(seen) < len(every):  # only a cycle of parent ids gets here
        visit([_Node(s) for s in every if id(s) not in seen])
    return out


def _prefix(lasts: tuple[bool, ...], glyphs: Glyphs) -> str:
    if not lasts:
        return ""
    cells = ["   " if last else glyphs.pipe for last in lasts[:-1]]
    cells.append(glyphs.last if lasts[-1] else glyphs.branch)
    if len(cells) > _MAX_INDENT:
        cells = [glyphs.ellipsis.ljust(3), *cells[-(_MAX_INDENT - 1) :]]
    return "".join(cells)


def _cut(text: str, width: int, glyphs: Glyphs) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(glyphs.ellipsis), 0)] + glyphs.ellipsis


def _bar(start: int, end: int, origin: int, total: int, width: int) -> tuple[int, int]:
    """(first column, column after the last) of a span's bar: its start and end rounded to
    the nearest column, at least one column wide."""
    first = min(round((start - origin) * width / total), width - 1)
    after = round((end - origin) * width / total)
    return max(first, 0), min(max(after, first + 1), width)


def render_trace(
    spans: Sequence[ReadableSpan],
    *,
    color: bool = False,
    glyphs: Glyphs = UNICODE,
    width: int = BAR_WIDTH,
    note: str | None = None,
) -> str:
    """The waterfall of ``spans`` (one trace, any order), a header line first, ``\\n`` ended.

    ``note`` says why the trace is printed before its local root ended (held too long, exit).
    """
    if not spans:
        return ""
    origin = min(s.start_time for s in spans)
    finish = max((s.end_time or s.start_time) for s in spans)
    total = max(finish - origin, 1)
    rows = _walk(_tree(spans, glyphs), glyphs, spans)
    cells = [
        prefix + node.marker
        if node.span is None
        else _cut(prefix + _clean(node.span.name), _NAME_WIDTH, glyphs)
        for prefix, node in rows
    ]
    name_width = max(len(c) for c, (_, node) in zip(cells, rows, strict=True) if node.span)
    errors = sum(1 for s in spans if s.status.status_code is StatusCode.ERROR)
    lines = [_header(spans, total, errors, note, glyphs, color)]
    for cell, (_, node) in zip(cells, rows, strict=True):
        span = node.span
        if span is None:
            lines.append(f"{_DIM}{cell}{_RESET}" if color else cell)
            continue
        end = span.end_time or span.start_time
        first, after = _bar(span.start_time, end, origin, total, width)
        failed = span.status.status_code is StatusCode.ERROR
        bar = glyphs.bar * (after - first)
        if color:
            tint = _RED if failed else _KIND_COLOURS.get(span.kind, "")
            bar = f"{tint}{bar}{_RESET}"
        details = []
        if span.kind is not SpanKind.INTERNAL:
            details.append(span.kind.name.lower())
        if failed:
            mark = glyphs.error
            why = _why(span)
            if why:
                mark += ": " + _cut(_clean(why), _NOTE_WIDTH, glyphs)
            details.append(f"{_RED}{mark}{_RESET}" if color else mark)
        details += _key_attributes(span)
        line = (
            cell.ljust(name_width)
            + "  "
            + " " * first
            + bar
            + " " * (width - after)
            + "  "
            + format_duration(end - span.start_time, glyphs).rjust(9)
        )
        if details:
            line += "  " + " ".join(details)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _header(
    spans: Sequence[ReadableSpan],
    total: int,
    errors: int,
    note: str | None,
    glyphs: Glyphs,
    color: bool,
) -> str:
    first = spans[0]
    service = first.resource.attributes.get("service.name")
    parts = [f"trace {first.context.trace_id:032x}"]
    if service:
        parts.append(_clean(str(service)))
    parts.append(f"{len(spans)} span" + ("" if len(spans) == 1 else "s"))
    parts.append(format_duration(total, glyphs))
    if errors:
        parts.append(f"{errors} error" + ("" if errors == 1 else "s"))
    if note:
        parts.append(note)
    text = " | ".join(parts)
    return f"{_BOLD}{text}{_RESET}" if color else text
