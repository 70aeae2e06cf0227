"""The small Markdown subset the report is written in, rendered to HTML.

The report is written once, as Markdown, and the HTML page is rendered from that text, so both
files always say the same thing. Supported: ``#`` headings, paragraphs, ``|`` tables (header
row, ``|---|`` separator, body rows), ``-``/``*``/``1.`` lists, and inline code spans,
``**strong**``, ``*emphasis*``, images and links. Everything else is text: it is HTML-escaped,
so a ``<script>`` in a method name or judge name prints as text and never runs.
"""

from __future__ import annotations

import html
import re

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_BULLET = re.compile(r"^[-*]\s+(.*)$")
_NUMBERED = re.compile(r"^\d+[.)]\s+(.*)$")
_CODE = re.compile(r"(`+)(.+?)\1", re.S)
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
# one star, not part of a word (so "2*3*4" stays text)
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
# links and images may point to files beside the report or to the web, never to script
_SAFE_URL = re.compile(r"^(https?://|mailto:|[^:]*$)", re.I)


def _text(s: str) -> str:
    """Inline markup of text outside code spans: escape first, then add the tags."""
    s = html.escape(s, quote=True)

    def image(m):
        alt, src = m.group(1), m.group(2)
        return f'<img src="{src}" alt="{alt}">' if _SAFE_URL.match(html.unescape(src)) else alt

    def link(m):
        label, href = m.group(1), m.group(2)
        return f'<a href="{href}">{label}</a>' if _SAFE_URL.match(html.unescape(href)) else label

    s = _IMAGE.sub(image, s)
    s = _LINK.sub(link, s)
    s = _STRONG.sub(r"<strong>\1</strong>", s)
    return _EM.sub(r"<em>\1</em>", s)


def inline(s: str) -> str:
    """One line of Markdown text → HTML: code spans verbatim (escaped), markup elsewhere."""
    out, pos = [], 0
    for m in _CODE.finditer(s):
        out.append(_text(s[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(2).strip(), quote=True)}</code>")
        pos = m.end()
    out.append(_text(s[pos:]))
    return "".join(out)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def _table(lines: list[str]) -> str:
    head = "".join(f"<th>{inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in lines[2:])
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def _is_table(block: list[str]) -> bool:
    return len(block) >= 2 and block[0].lstrip().startswith("|") and bool(_TABLE_RULE.match(block[1]))


def _list(block: list[str]) -> str | None:
    """A block whose every line is an item of one kind of list, else None."""
    for pattern, tag in ((_BULLET, "ul"), (_NUMBERED, "ol")):
        items = [pattern.match(line) for line in block]
        if all(items):
            return f"<{tag}>" + "".join(f"<li>{inline(m.group(1))}</li>" for m in items) + f"</{tag}>"
    return None


def _blocks(text: str) -> list[list[str]]:
    """Lines grouped into blocks at blank lines; a heading is always a block of its own."""
    blocks, cur = [], []
    for line in text.splitlines():
        if not line.strip() or _HEADING.match(line):
            if cur:
                blocks.append(cur)
            cur = []
            if line.strip():
                blocks.append([line])
            continue
        cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def to_html(text: str) -> str:
    """The body HTML of a Markdown document in the subset above."""
    parts = []
    for block in _blocks(text):
        heading = _HEADING.match(block[0]) if len(block) == 1 else None
        if heading:
            level = len(heading.group(1))
            parts.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif _is_table(block):
            parts.append(_table(block))
        elif (listed := _list(block)) is not None:
            parts.append(listed)
        else:
            parts.append("<p>" + inline(" ".join(line.strip() for line in block)) + "</p>")
    return "\n".join(parts)


_STYLE = ("body{font-family:sans-serif;max-width:72em;margin:1em auto;padding:0 1em;line-height:1.4}"
          "table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid #999;padding:3px 6px;"
          "text-align:left}th{background:#eee}code{background:#f3f3f3;padding:0 2px}img{max-width:100%}")


def page(title: str, text: str) -> str:
    """A whole HTML page for the Markdown ``text``."""
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body>\n{to_html(text)}\n</body></html>\n")
