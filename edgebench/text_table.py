"""Plain-text tables for the terminal, one format for every command that prints one (the
controller's ``models``, ``convert``, ``run``, ``fleet``, ``report``, and ``history`` / ``compare``)."""

from __future__ import annotations

__all__ = ["text_table"]


def text_table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned columns two spaces apart under the headers and a dashed rule; every cell is shown
    as ``str(cell)`` (numbers are formatted by the caller)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *cells, strict=True)]
    line = "  ".join(f"{{:<{width}}}" for width in widths)
    out = [line.format(*headers), line.format(*("-" * width for width in widths))]
    out.extend(line.format(*row) for row in cells)
    return "\n".join(out)
