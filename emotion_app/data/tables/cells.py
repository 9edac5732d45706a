"""Cell values of workbooks, Parquet and JSON as the text a classifier reads: numbers as written
(4.0 -> "4"), dates in ISO form, bytes decoded as UTF-8, and nested values (lists, objects,
structs) as JSON text, never as Python reprs."""

from __future__ import annotations

import json


def cell_text(value: object) -> str:
    """`value` as text; ValueError when it is bytes that are not UTF-8 text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decoded(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def json_cell(value: object) -> str:
    """A JSON record's value: strings as they are, anything else as JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _decoded(value: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"holds bytes that are not UTF-8 text (byte {err.start} is 0x{bytes(value)[err.start]:02x})") \
            from None


def _json_default(value: object) -> object:
    """Values json cannot write itself, inside lists and structs: bytes, dates, decimals."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decoded(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
