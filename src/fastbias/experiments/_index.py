"""The index page of ``fastbias reproduce all``: every target's figures and verdicts."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from ._framework import Report

__all__ = ["write_index"]


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _markdown(reports: Sequence[Report], root: Path, failed: dict[str, str]) -> str:
    lines = ["# fastbias reproduce: the papers' experiments", ""]
    quick = any(r.quick for r in reports)
    lines.append(
        f"{'Reduced (--quick) settings' if quick else 'Full settings'}; "
        f"total time {sum(r.elapsed for r in reports):.0f} s. A claim that does not hold is "
        "FAIL; a *documented finding* is a claim the paper makes that does not hold under its "
        "stated settings (see the target's notes)."
    )
    lines += ["", "| target | paper | claims that hold | time |", "|---|---|---|---|"]
    for r in reports:
        ok, n = r.counts
        lines.append(
            f"| [{r.target}](#{r.target.replace('.', '').lower()}) | {r.paper} | {ok}/{n} | "
            f"{r.elapsed:.1f} s |"
        )
    for name, err in failed.items():
        lines.append(f"| {name} | | error: {err} | |")
    for r in reports:
        lines += ["", f"## {r.target}", "", f"{r.paper}: {r.title}", ""]
        for f in r.files:
            if f.suffix == ".png":
                lines.append(f"![{r.target}]({_rel(f, root)})")
        lines += ["", "| claim | source | theory | measured | tolerance | verdict |"]
        lines.append("|---|---|---|---|---|---|")
        for c in r.claims:
            cells = [c.claim, c.source, c.predicted, c.measured, c.tolerance, c.verdict]
            lines.append("| " + " | ".join(s.replace("|", "\\|") for s in cells) + " |")
        notes = [c for c in r.claims if c.note]
        if notes:
            lines.append("")
            for c in notes:
                lines.append(f"- *{c.claim}*: {c.note}")
        data = [f for f in r.files if f.suffix in (".csv", ".json")]
        lines += ["", "Data: " + ", ".join(f"[{f.name}]({_rel(f, root)})" for f in data)]
    return "\n".join(lines) + "\n"


def _html(reports: Sequence[Report], root: Path, failed: dict[str, str]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>fastbias reproduce</title><style>",
        "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}",
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;",
        "padding:3px 6px;font-size:90%}img{max-width:100%}.PASS{color:#070}.FAIL{color:#b00}",
        "</style></head><body><h1>fastbias reproduce: the papers' experiments</h1>",
        "<table><tr><th>target</th><th>paper</th><th>claims that hold</th><th>time</th></tr>",
    ]
    for r in reports:
        ok, n = r.counts
        parts.append(
            f"<tr><td><a href='#{e(r.target)}'>{e(r.target)}</a></td><td>{e(r.paper)}</td>"
            f"<td>{ok}/{n}</td><td>{r.elapsed:.1f} s</td></tr>"
        )
    for name, err in failed.items():
        parts.append(f"<tr><td>{e(name)}</td><td></td><td>error: {e(err)}</td><td></td></tr>")
    parts.append("</table>")
    for r in reports:
        parts.append(f"<h2 id='{e(r.target)}'>{e(r.target)}</h2><p>{e(r.paper)}: {e(r.title)}</p>")
        for f in r.files:
            if f.suffix == ".png":
                parts.append(f"<img src='{e(_rel(f, root))}' alt='{e(r.target)}'>")
        parts.append(
            "<table><tr><th>claim</th><th>source</th><th>theory</th><th>measured</th>"
            "<th>tolerance</th><th>verdict</th></tr>"
        )
        for c in r.claims:
            cls = "PASS" if c.passed else "FAIL"
            parts.append(
                "<tr>"
                + "".join(
                    f"<td>{e(s)}</td>"
                    for s in (c.claim, c.source, c.predicted, c.measured, c.tolerance)
                )
                + f"<td class='{cls}' title='{e(c.note)}'>{e(c.verdict)}</td></tr>"
            )
        parts.append("</table>")
        notes = [c for c in r.claims if c.note]
        if notes:
            parts.append(
                "<ul>"
                + "".join(f"<li><i>{e(c.claim)}</i>: {e(c.note)}</li>" for c in notes)
                + "</ul>"
            )
        data = [f for f in r.files if f.suffix in (".csv", ".json")]
        parts.append(
            "<p>Data: "
            + ", ".join(f"<a href='{e(_rel(f, root))}'>{e(f.name)}</a>" for f in data)
            + "</p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_index(
    reports: Sequence[Report], root: Path, failed: dict[str, str] | None = None
) -> list[Path]:
    """Write ``root/README.md`` and ``root/index.html`` (figures inline, every claim)."""
    failed = failed or {}
    md = root / "README.md"
    md.write_text(_markdown(reports, root, failed))
    page = root / "index.html"
    page.write_text(_html(reports, root, failed))
    return [md, page]
