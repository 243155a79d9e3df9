"""What commands print: status tables drawn with rich (``stack status``, ``writer status``),
and results as one JSON line (``neuralake produce``, ``neuralake writer baseline``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()
) -> None:
    """Columns aligned to their widest cell, then one line per note below the table.

    Cells are printed as written (no rich markup: an error's ``[Errno 111]`` stays), whole
    (a long line wraps in the terminal, as any other), and no line ends in spaces.
    """
    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*row)
    # Never narrower than the rows: a path cut to fit the terminal would hide where data is.
    console = Console(markup=False, highlight=False, width=10_000)
    with console.capture() as drawn:
        console.print(table)
    for line in drawn.get().splitlines():
        print(line.rstrip())  # rich pads every cell, the last ones too
    for note in notes:
        print(note)


class JsonLine:
    """A result (a dataclass of plain values) that a command prints as one JSON line."""

    def to_json(self) -> str:
        return json.dumps(vars(self))
