"""The sections as one self-contained HTML page and as Markdown next to its PNG files.

The HTML embeds each PNG as a base64 data URI and its CSS inline: it opens offline, can be
mailed as one file, and references no URL at all (the query service's address appears
as text only).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from questlog_report.model import Section, Table


@dataclass(frozen=True)
class Header:
    generated_at: str
    base_url: str
    since: str | None
    until: str | None

    def window(self) -> str:
        if not self.since and not self.until:
            return "all data"
        return f"since {self.since or 'the beginning'} until {self.until or 'now'}"


TITLE = "questlog report"

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #222;
       padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ccd; padding-bottom: .2rem;
       margin-top: 2.2rem; } h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta, .calls, figcaption, .source { color: #555; font-size: .85rem; }
code, pre { font-family: ui-monospace, monospace; font-size: .85rem; }
pre { background: #f4f6fa; padding: .8rem; overflow-x: auto; }
table { border-collapse: collapse; margin: .4rem 0 .2rem; font-size: .9rem; }
th, td { border: 1px solid #ccd; padding: .25rem .6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef3fa; }
img { max-width: 100%; border: 1px solid #dde; }
figure { margin: 1rem 0; }
"""


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    body = (
        "".join(
            "<tr>"
            + "".join(
                f'<td class="n">{e(v)}</td>' if _numeric(v) else f"<td>{e(v)}</td>" for v in row
            )
            + "</tr>"
            for row in table.rows
        )
        or f'<tr><td colspan="{len(table.columns)}">no rows</td></tr>'
    )
    return (
        f"<h3>{e(table.title)}</h3>\n<table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>\n"
        f'<div class="source">answered by <code>{e(table.call)}</code></div>\n'
    )


def to_html(header: Header, sections: list[Section]) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(TITLE)} {e(header.generated_at)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(TITLE)}</h1>",
        f'<p class="meta">generated {e(header.generated_at)} from the query service at '
        f"<code>{e(header.base_url)}</code>; window: {e(header.window())}</p>",
        "<ol>"
        + "".join(f'<li><a href="#{e(s.key)}">{e(s.title)}</a></li>' for s in sections)
        + "</ol>",
    ]
    for s in sections:
        parts.append(f'<section id="{e(s.key)}"><h2>{e(s.title)}</h2>')
        parts.append(
            '<p class="calls">API calls: '
            + ", ".join(f"<code>{e(c)}</code>" for c in s.calls)
            + "</p>"
        )
        parts += [f"<p>{e(p)}</p>" for p in s.paragraphs]
        for fig in s.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            parts.append(
                f'<figure><img alt="{e(fig.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(fig.title)} — as_of: {e(fig.as_of)} — "
                f"<code>{e(fig.call)}</code></figcaption></figure>"
            )
        if s.preformatted:
            parts.append(f"<pre>{e(s.preformatted)}</pre>")
        parts += [_html_table(t) for t in s.tables]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    lines = [
        f"**{table.title}**",
        "",
        "| " + " | ".join(map(_md_cell, table.columns)) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows]
    if not table.rows:
        lines.append("| " + " | ".join(["(no rows)"] + [""] * (len(table.columns) - 1)) + " |")
    lines += ["", f"answered by `{table.call}`", ""]
    return "\n".join(lines)


def to_markdown(header: Header, sections: list[Section]) -> str:
    out = [
        f"# {TITLE}",
        "",
        f"generated {header.generated_at} from the query service at `{header.base_url}`; "
        f"window: {header.window()}",
        "",
    ]
    for s in sections:
        out += [f"## {s.title}", "", "API calls: " + ", ".join(f"`{c}`" for c in s.calls), ""]
        for p in s.paragraphs:
            out += [p, ""]
        for fig in s.figures:
            out += [
                f"![{fig.title}]({fig.name}.png)",
                "",
                f"*{fig.title} — as_of: {fig.as_of} — `{fig.call}`*",
                "",
            ]
        if s.preformatted:
            out += ["```text", s.preformatted, "```", ""]
        out += [_md_table(t) for t in s.tables]
    return "\n".join(out)


def write(out_dir: Path, header: Header, sections: list[Section]) -> Path:
    """report.html, report.md and one PNG per figure into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=False)
    for s in sections:
        for fig in s.figures:
            (out_dir / f"{fig.name}.png").write_bytes(fig.png)
    (out_dir / "report.md").write_text(to_markdown(header, sections), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(header, sections), encoding="utf-8")
    return page
