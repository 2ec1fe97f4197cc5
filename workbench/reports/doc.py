"""A tiny document model rendered twice, to Markdown and to self-contained HTML, so both say the same.

Blocks: Heading, Para (a list of spans: plain text, **bold**, `code`), Bullets, Table, Image.
All text is escaped at render time (Markdown specials / html.escape), never by the caller.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

from .fmt import md, md_code

Span = tuple[str, str]  # (kind, text), kind in {"text", "bold", "code"}


def text(s: object) -> Span:
    return ("text", str(s))


def bold(s: object) -> Span:
    return ("bold", str(s))


def code(s: object) -> Span:
    return ("code", str(s))


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    spans: list[Span]


@dataclass
class Bullets:
    items: list[list[Span]]
    role: str = ""  # HTML only: the list's class ("header": compact, "headline": the answer, larger)


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)  # numeric columns, right-aligned
    # HTML only: too many columns for a 1280 px page side by side, so the page shows one table per group
    # of column indices (each starting with column 0, the row's name), captioned; Markdown keeps one table.
    html_groups: list[tuple[str, list[int]]] | None = None


@dataclass
class Image:
    alt: str
    path: str  # relative to the report, e.g. plots/val_loss_vs_step.png
    png: bytes


Block = Heading | Para | Bullets | Table | Image


def _md_spans(spans: list[Span]) -> str:
    out = []
    for kind, s in spans:
        if kind == "bold":  # emphasis markers must hug the text: keep edge spaces outside them
            core = s.strip()
            out.append(s[: len(s) - len(s.lstrip())] + f"**{md(core)}**" + s[len(s.rstrip()):] if core else s)
        else:
            out.append(md_code(s) if kind == "code" else md(s))
    return "".join(out)


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {md(b.text)}")
        elif isinstance(b, Para):
            parts.append(_md_spans(b.spans))
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {_md_spans(item)}" for item in b.items))
        elif isinstance(b, Table):
            align = ["---:" if i in b.right else ":---" for i in range(len(b.headers))]
            lines = [b.headers, align] + b.rows
            parts.append("\n".join(
                "| " + " | ".join(cell if j == 1 else md(cell) for cell in line) + " |"
                for j, line in enumerate(lines)))
        elif isinstance(b, Image):
            parts.append(f"![{md(b.alt)}]({b.path})")
    return "\n\n".join(parts) + "\n"


# Cells never split a word: they wrap only at spaces (and inside a long identifier at its / _ . after a <wbr>,
# _cell below), so "better" or "layernorm" stays whole. At 1280 px every table fits the page (the results table is
# shown as two, Table.html_groups); under 900 px the tables take a smaller font and padding, and a table that is still
# wider than the page scrolls on its own, never the page.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:1.2em auto;
padding:0 1em;color:#1a1a1a;line-height:1.45}
p,li{overflow-wrap:break-word}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em;margin:.2em 0 .4em;font-size:1.7em}
h2{margin-top:1.6em;border-bottom:1px solid #eee}
ul.header{margin:.3em 0;padding-left:1.2em;font-size:.92em}ul.header li{margin:0}
ul.headline{margin:.5em 0;padding-left:1.2em;font-size:1.05em}ul.headline li{margin:.15em 0}
.tw{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .45em;vertical-align:top;overflow-wrap:normal;word-break:normal;hyphens:none}
th{background:#f3f3f3;text-align:left;font-weight:600}
td.r{text-align:right;font-variant-numeric:tabular-nums}
.nw{white-space:nowrap}
tr:nth-child(even) td{background:#fafafa}
code{background:#f2f2f2;padding:.1em .3em;border-radius:3px;overflow-wrap:anywhere}
img{max-width:100%;height:auto;border:1px solid #eee}figure{margin:.6em 0}
caption{text-align:left;font-weight:600;padding:.2em 0;caption-side:top}
@media (max-width:900px){body{padding:0 .6em}table{font-size:.78em}th,td{padding:.2em .3em}}
"""


def _html_spans(spans: list[Span]) -> str:
    tags = {"bold": "strong", "code": "code"}
    return "".join(f"<{tags[k]}>{html.escape(s)}</{tags[k]}>" if k in tags else html.escape(s) for k, s in spans)


LONG_WORD = 24  # characters: a longer word in a cell (a path, a config key) may wrap after its / _ . characters
_PIECES = re.compile(r"(?<=[/_.])(?=.)")  # after each / _ . that does not end the word
_BREAKS = re.compile(r"[-/\u2010\u2013\u2014]")  # where a browser would otherwise wrap inside a word


def _cell(value: str) -> str:
    """A table cell's text, escaped, that wraps at its spaces only: a word a browser could break (at a hyphen, a
    slash) is kept on one line, and one longer than LONG_WORD may wrap after its / _ . characters (<wbr>), between
    the parts of an identifier."""
    def piece(p: str) -> str:
        return f'<span class="nw">{html.escape(p)}</span>' if _BREAKS.search(p) else html.escape(p)

    return " ".join("<wbr>".join(piece(p) for p in (_PIECES.split(w) if len(w) > LONG_WORD else [w]))
                    for w in value.split(" "))


def _html_table(b: Table, caption: str, columns: list[int]) -> str:
    head = "".join(f"<th>{_cell(b.headers[i])}</th>" for i in columns)
    cls = {i: '<td class="r">' if i in b.right else "<td>" for i in columns}
    rows = "".join("<tr>" + "".join(f"{cls[i]}{_cell(r[i])}</td>" for i in columns) + "</tr>" for r in b.rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'


def to_html(blocks: list[Block], title: str) -> str:
    """One file, no external resources: CSS inline, images as data: URIs."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_html_spans(b.spans)}</p>")
        elif isinstance(b, Bullets):
            role = f' class="{b.role}"' if b.role else ""
            body.append(f"<ul{role}>" + "".join(f"<li>{_html_spans(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            for caption, columns in b.html_groups or [("", list(range(len(b.headers))))]:
                body.append(_html_table(b, caption, columns))
        elif isinstance(b, Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}"></figure>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
