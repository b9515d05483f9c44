"""Go's text/tabwriter column layout, which is what makes kubectl's output line up.

Text is cells separated by tabs; a cell is tab-terminated, so the text after a line's last
tab is not a column and is never padded. A column block is a run of consecutive lines
that all have a cell in that column; each block gets the width of its widest cell plus
the padding (at least `minwidth`). `kubectl get` uses minwidth 6 and padding 3;
`kubectl describe` uses minwidth 0 and padding 2. Copying the algorithm, not an
approximation, keeps nested describe sections aligned the way kubectl users expect.
"""

from __future__ import annotations

from collections.abc import Iterable

GET = (6, 3)
DESCRIBE = (0, 2)


def _cells(text: str) -> list[list[str]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.split("\t") for line in lines]


def format_text(text: str, *, minwidth: int = GET[0], padding: int = GET[1]) -> str:
    """Lay out tab-separated text; the result ends with a newline when the input did."""
    rows = _cells(text)
    out: list[str] = []
    widths: list[int] = []

    def write_lines(start: int, end: int) -> None:
        for row in rows[start:end]:
            # Only tab-terminated cells have a width; the last cell is written as is.
            out.append("".join(cell.ljust(widths[j]) if j < len(widths) else cell
                               for j, cell in enumerate(row)))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(rows))
    result = "\n".join(out)
    return result + "\n" if text.endswith("\n") and out else result


def table(rows: Iterable[Iterable[str]], *, minwidth: int = GET[0],
          padding: int = GET[1]) -> str:
    """Rows of cells as kubectl prints a table: columns aligned, the last one unpadded."""
    text = "".join("\t".join(cells) + "\n" for cells in rows)
    return format_text(text, minwidth=minwidth, padding=padding)
