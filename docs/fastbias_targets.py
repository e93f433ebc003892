"""Sphinx extension: ``.. fastbias-targets::`` lists the registered reproduce targets.

The list is read from :data:`fastbias.experiments.TARGETS` when the docs are built, so the page
shows exactly the targets the installed ``fastbias reproduce`` offers. Docstrings are shown as
preformatted text (they are written for the terminal, not as reStructuredText).
"""

from __future__ import annotations

import inspect

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class TargetsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from fastbias.experiments import list_targets

        out: list[nodes.Node] = []
        for target in list_targets():
            section = nodes.section(ids=[nodes.make_id(f"target-{target.name}")])
            section += nodes.title(text=target.name)
            para = nodes.paragraph()
            para += nodes.strong(text=target.title)
            para += nodes.Text(
                f" ({target.paper}; about {target.seconds_full:g} s, "
                f"{target.seconds_quick:g} s with --quick)"
            )
            section += para
            section += nodes.literal_block(text=f"fastbias reproduce {target.name}")
            doc = inspect.cleandoc(target.doc or "")
            if doc:
                section += nodes.literal_block(text=doc)
            out.append(section)
        if not out:
            out.append(nodes.paragraph(text="No reproduce targets are registered."))
        return out


def setup(app):
    app.add_directive("fastbias-targets", TargetsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
