"""Tool: `streamproc top`'s view of a window, drawn for a terminal (rich tables) or as plain
text."""

from __future__ import annotations

from rich import box
from rich.columns import Columns
from rich.console import Group
from rich.table import Table

from streamproc.tools.top.sections import Section, sections
from streamproc.tools.top.window import Window


def screen(view: Window) -> Group:
    """The workers' table across, then the others side by side, as many as the terminal's
    width allows (a long reason a worker is down would widen every column)."""
    workers, *others = (_table(section) for section in sections(view))
    return Group(workers, Columns(others))


def plain_text(view: Window) -> str:
    return "\n\n".join(plain_section(section) for section in sections(view))


def _table(section: Section) -> Table:
    # no frame, so that more of the view fits a terminal's height
    table = Table(title=section.title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for index, column in enumerate(section.columns):
        table.add_column(column, justify="left" if index < section.keys else "right")
    for row in section.rows:
        table.add_row(*row)
    return table


def plain_section(section: Section) -> str:
    lines = [section.columns, *section.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(section.columns))]
    text = [section.title]
    for line in lines:
        cells = [
            cell.ljust(width) if index < section.keys else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  " + "  ".join(cells).rstrip())
    return "\n".join(text)
