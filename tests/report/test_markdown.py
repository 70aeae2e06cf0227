"""The report's Markdown subset rendered to HTML: code spans, tables, headings, lists, emphasis;
every bit of text HTML-escaped."""

from __future__ import annotations

from booster.report.markdown import page, to_html

DOC = """# Title <b>

Model `smollm2 <x>` runs **fast** and *well*; 2*3*4 stays text.

| method | HS `p=0.1` |
|---|---|
| <script>alert(1)</script> | 12.5 |

- first `item`
- second

1. one
2. two

![plot of <HS>](hs.png) and [a link](javascript:alert(1))
"""


def test_markdown_renders_code_tables_headings_lists_and_emphasis():
    out = to_html(DOC)
    assert "<h1>Title &lt;b&gt;</h1>" in out
    assert "<code>smollm2 &lt;x&gt;</code>" in out and "`" not in out
    assert "<strong>fast</strong>" in out and "<em>well</em>" in out and "2*3*4 stays text" in out
    assert "<table>" in out and "<th>method</th><th>HS <code>p=0.1</code></th>" in out
    assert "<td>12.5</td>" in out and "---" not in out
    assert "<ul><li>first <code>item</code></li><li>second</li></ul>" in out
    assert "<ol><li>one</li><li>two</li></ol>" in out
    assert '<img src="hs.png" alt="plot of &lt;HS&gt;">' in out


def test_markdown_escapes_html_and_drops_script_links():
    out = to_html(DOC)
    assert "<script>" not in out and "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<a " not in out and "javascript:" not in out and "a link" in out  # the label stays, as text


def test_page_is_a_whole_document_with_an_escaped_title():
    html = page("<run>", "# x")
    assert html.startswith("<!doctype html>") and "<title>&lt;run&gt;</title>" in html and "<h1>x</h1>" in html


def test_safe_links_are_rendered():
    assert to_html("see [docs](docs/judging.md)") == '<p>see <a href="docs/judging.md">docs</a></p>'
