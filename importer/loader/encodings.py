"""A CSV's encoding and delimiter: given, hinted by Excel's ``sep=`` line, or detected."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from typing import Final

from importer.errors import InputError
from importer.loader.source import _Source

_SCAN_CHUNK = 1 << 20
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_RECORDS = 200
_DELIMITERS = (",", ";", "\t", "|")


_ERRORS = "rd-importer-latin1"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # Windows-1252 leaves five bytes undefined; Latin-1 reads them as the C1 controls they are.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_ERRORS, _latin1_fallback)


def check_text_options(encoding: str | None, delimiter: str | None) -> None:
    """Raise ``InputError`` when ``--encoding`` or ``--delimiter`` is unusable for any file."""
    if encoding is not None:
        _codec(encoding)
    if delimiter is not None:
        _check_delimiter(delimiter)


# Codecs Python knows that read no file's text: they turn bytes into other bytes (base64, zlib,
# hex, ...; Python marks those), text into other text (rot13), or domain names into others.
_NOT_FILE_ENCODINGS: Final = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)


def _codec(given: str) -> str:
    try:
        info = codecs.lookup(given)
    except LookupError:
        raise InputError(
            f"--encoding {given!r} is not an encoding Python knows: "
            "try utf-8, cp1252, latin-1 or utf-16"
        ) from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_FILE_ENCODINGS:
        raise InputError(
            f"--encoding {given!r} is not a text encoding (it turns bytes into other bytes or "
            "names into other names): try utf-8, cp1252, latin-1 or utf-16"
        )
    return info.name


def _choose_encoding(source: _Source, head: bytes, given: str | None) -> tuple[str, str]:
    if given is not None:
        codec = _codec(given)
        if codec == "utf-8" and head.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        _scan_text(source, codec, given)
        return codec, given
    if head.startswith(codecs.BOM_UTF8):
        codec, label = "utf-8-sig", "UTF-8 with BOM"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec, label = "utf-16", "UTF-16"
    else:
        codec, label = _guess_utf16_without_bom(head), "UTF-16"
    if codec:
        _scan_text(source, codec, label)
        return codec, label
    try:
        _scan_text(source, "utf-8", "UTF-8", detecting=True)
    except _NotThisEncoding:
        # Every byte is a character in Windows-1252 (with the Latin-1 fallback): only NULs matter.
        _scan_text(source, "cp1252", "Windows-1252")
        return "cp1252", "Windows-1252"
    return "utf-8", "UTF-8"


def _guess_utf16_without_bom(head: bytes) -> str:
    sample = head[:4096]
    half = len(sample) // 2
    if half < 2:
        return ""
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return ""


class _NotThisEncoding(Exception):
    pass


def _scan_text(source: _Source, codec: str, label: str, *, detecting: bool = False) -> None:
    """Decode the whole file once, cheaply: invalid bytes anywhere or a NUL refuse it now."""
    decoder = codecs.getincrementaldecoder(codec)(_ERRORS if codec == "cp1252" else "strict")
    ascii_safe = "a\n".encode(codec) == b"a\n"
    offset = 0
    path = source.shown
    try:
        with source.reader() as raw:
            while chunk := raw.read(_SCAN_CHUNK):
                if ascii_safe and chunk.isascii() and not decoder.getstate()[0]:
                    nul = chunk.find(0)
                else:
                    nul = decoder.decode(chunk).find("\0")
                    if nul >= 0 and ascii_safe:
                        nul = chunk.find(0)
                if nul >= 0:
                    raise InputError(
                        f"{path} looks like a binary file, not a CSV (it holds NUL bytes, "
                        f"the first at byte {offset + nul:,}): export the data as CSV or XLSX"
                    )
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if detecting:
            raise _NotThisEncoding from None
        raise InputError(
            f"{path} is not valid {label} text (near byte {offset + exc.start:,}): "
            "leave out --encoding to let the importer detect it, or give the right one"
        ) from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}): check the file") from None


def _check_delimiter(given: str) -> str:
    if given.lower() in ("tab", "\\t"):
        return "\t"
    if len(given) != 1 or given in '"\r\n':
        raise InputError(
            f"--delimiter {given!r} must be one character such as ',' ';' '|' or 'tab'"
        )
    return given


_SEP_LINE = re.compile(r"sep=([^\"\r\n])(?:\r\n|\r|\n)?")


def _excel_sep_line(source: _Source, codec: str) -> str | None:
    """The delimiter named by a first line ``sep=;``, which tells Excel how to split the file."""
    with source.text(codec, _ERRORS) as text:
        found = _SEP_LINE.fullmatch(text.readline(16))
    return found.group(1) if found else None


def _detect_delimiter(source: _Source, codec: str, header_row: int) -> str:
    """Pick the delimiter that splits the header and the rows after it most consistently."""
    with source.text(codec, _ERRORS) as text:
        sample = text.read(_SAMPLE_CHARS)
        complete = not text.read(1)
    if not complete:
        end = max(sample.rfind("\n"), sample.rfind("\r"))
        sample = sample[: end + 1] if end > 0 else sample
    best, best_score = ",", (0, 0.0, 0)
    for delimiter in _DELIMITERS:
        try:
            records = list(
                itertools.islice(
                    csv.reader(io.StringIO(sample), delimiter=delimiter),
                    header_row - 1,
                    header_row + _SAMPLE_RECORDS,
                )
            )
        except csv.Error:
            continue
        if not complete and len(records) > 2:
            records.pop()  # it may be cut in the middle of a quoted line break
        records = [r for r in records if any(r)]
        if not records:
            continue
        width = len(records[0])
        rest = records[1:]
        fitting = sum(1 for r in rest if len(r) == width or not any(r[width:]))
        score = (int(width > 1), fitting / len(rest) if rest else 1.0, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best
