"""Byte-level access to .tte files for the format tests: split one into parts, rewrite its header
(re-checksummed, so that an edit reaches the checks behind the checksum), or write it as format 1."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from tte_ir.serialize import MAGIC

ALIGN = 64
DIGEST = 32


@dataclass(frozen=True)
class TteParts:
    """A format-2 file cut into its header (parsed and raw) and its blob area."""

    header: dict
    raw_header: bytes
    header_start: int
    blobs: bytes


def split(data: bytes) -> TteParts:
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    raw = data[start : start + n]
    blob_start = start + n + DIGEST
    blob_start += -blob_start % ALIGN
    return TteParts(json.loads(raw), raw, start, data[blob_start:])


def assemble(raw_header: bytes, blobs: bytes, *, checksum: bool = True) -> bytes:
    """A file from header bytes and a blob area; without ``checksum``, laid out as format 1 was."""
    prefix = MAGIC + struct.pack("<I", len(raw_header)) + raw_header
    if checksum:
        prefix += hashlib.sha256(raw_header).digest()
    prefix += b"\0" * (-len(prefix) % ALIGN)
    return prefix + blobs


def rewrite_header(path: Path, edit) -> None:
    """Apply ``edit`` to the parsed header of ``path`` and write it back with a valid checksum."""
    parts = split(path.read_bytes())
    header = parts.header
    edit(header)
    path.write_bytes(assemble(json.dumps(header).encode(), parts.blobs))


def replace_header_text(path: Path, text: str) -> None:
    """Write ``text`` (any JSON, or not JSON) as the header of ``path``, re-checksummed."""
    parts = split(path.read_bytes())
    path.write_bytes(assemble(text.encode(), parts.blobs))


def blob_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
