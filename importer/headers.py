"""How two spreadsheet headers are compared when a person may have spelled one differently.

One rule for the whole importer: the mapping's "did you mean" for a column the file lacks, and
the scaffold recognising "E-mail", "Endereço de e-mail" and "EMAIL ADDRESS" as the email column.
The loader keeps headers as written (trimmed); only these comparisons fold them.
"""

from __future__ import annotations

from importer.transforms import fold


def header_key(header: str) -> str:
    """The header as compared: case, accents, spaces and punctuation left out.

    ``"Endereço de E-mail"`` -> ``"enderecodeemail"``; letters of other scripts are kept.
    """
    return "".join(c for c in fold(header) if c.isalnum())
