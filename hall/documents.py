"""Scanned materials attached to a case (D7), in the ``case_documents`` table, and
the event that tells the approval backend one has arrived.

A document is stored whole, in PostgreSQL (``bytea``), with its SHA-256: the hall
keeps it only until the backend has fetched it, and one database to back up is
simpler than a database and a file store that can disagree. The same bytes for the
same case are the same document, so a camera that retries an upload after a lost
answer gets the first one back instead of a copy.

What a body must look like follows the formats' own definitions: a JPEG is an SOI
marker followed by marker segments up to a start-of-frame (ITU-T T.81, B.1.1.3 and
table B.1); a PDF starts with ``%PDF-`` and ends with ``%%EOF`` (ISO 32000-1, 7.5.2
and 7.5.5) and its pages are the objects of ``/Type /Page`` (7.7.3.3).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hall.auth import Principal

JPEG = "image/jpeg"
PDF = "application/pdf"
CONTENT_TYPES = (JPEG, PDF)
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""A 20-page A4 PDF at 150 dpi and JPEG quality 80 is about 4 MB; twenty is room for
A3 colour without letting one upload hold a connection's memory for long."""

_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_COUNT = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


class BadDocument(ValueError):
    """The body is not what its Content-Type says."""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    case_id: str
    filename: str
    content_type: str
    size: int
    pages: int | None
    sha256: str
    uploaded_by: str
    uploader_role: str
    uploaded_at: datetime
    event_seq: int | None


def inspect_content(content_type: str, data: bytes) -> int | None:
    """The document's page count (None when a PDF's is not readable); raises
    BadDocument when the bytes are not a ``content_type`` document."""
    if content_type == JPEG:
        jpeg_size(data)
        return 1
    if content_type == PDF:
        return pdf_pages(data)
    raise BadDocument(f"{content_type} is not a document type")


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the start-of-frame segment."""
    if data[:3] != b"\xff\xd8\xff":
        raise BadDocument("a JPEG starts with the SOI marker FF D8")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise BadDocument(f"no JPEG marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            raise BadDocument(f"impossible JPEG segment length at byte {i}")
        if marker in _SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            if width == 0 or height == 0:
                raise BadDocument("a JPEG frame of no size")
            return width, height
        if marker == 0xDA:
            raise BadDocument("JPEG scan data before any frame header")
        i += 2 + length
    raise BadDocument("the JPEG ends before its frame header")


def pdf_pages(data: bytes) -> int | None:
    """Counted from the page objects; from the page tree's ``/Count`` when they
    are packed in compressed object streams; None when neither is readable."""
    if not data.startswith(b"%PDF-"):
        raise BadDocument("a PDF starts with %PDF-")
    if b"%%EOF" not in data[-1024:]:
        raise BadDocument("the PDF is cut short: no %%EOF at its end")
    pages = len(_PAGE.findall(data))
    if pages:
        return pages
    counts = [int(a or b) for a, b in _COUNT.findall(data)]
    return max(counts) if counts else None


class DocumentStore:
    """One hall's case documents."""

    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    async def add(
        self,
        case_id: str,
        filename: str,
        content_type: str,
        content: bytes,
        pages: int | None,
        principal: Principal,
    ) -> tuple[Document, bool]:
        """Store the document; returns it and whether it is new (False: the same
        bytes were already attached to this case, and that document is returned)."""
        digest = hashlib.sha256(content).digest()
        row = await self._pool.fetchrow(
            f"INSERT INTO case_documents (hall_id, id, case_id, filename, content_type,"
            f" size_bytes, pages, sha256, content, uploaded_by, uploader_role, remote)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            f" ON CONFLICT (hall_id, case_id, sha256) DO NOTHING RETURNING {_COLUMNS}",
            self._hall_id, uuid.uuid4(), case_id, filename, content_type, len(content), pages,
            digest, content, principal.id, str(principal.role), principal.remote,
        )
        if row is not None:
            return _document(row), True
        existing = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM case_documents"
            " WHERE hall_id = $1 AND case_id = $2 AND sha256 = $3",
            self._hall_id, case_id, digest,
        )
        if existing is None:
            raise RuntimeError("a conflicting document vanished")
        return _document(existing), False

    async def announced(self, document_id: str, seq: int) -> None:
        await self._pool.execute(
            "UPDATE case_documents SET event_seq = $3 WHERE hall_id = $1 AND id = $2",
            self._hall_id, uuid.UUID(document_id), seq,
        )

    async def of_case(self, case_id: str) -> list[Document]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM case_documents WHERE hall_id = $1 AND case_id = $2"
            " ORDER BY uploaded_at, id",
            self._hall_id, case_id,
        )
        return [_document(row) for row in rows]

    async def content(self, case_id: str, document_id: str) -> tuple[Document, bytes] | None:
        try:
            key = uuid.UUID(document_id)
        except ValueError:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS}, content FROM case_documents"
            " WHERE hall_id = $1 AND case_id = $2 AND id = $3",
            self._hall_id, case_id, key,
        )
        if row is None:
            return None
        return _document(row), bytes(row["content"])


_COLUMNS = (
    "id, case_id, filename, content_type, size_bytes, pages, sha256, uploaded_by,"
    " uploader_role, uploaded_at, event_seq"
)


def _document(row: Any) -> Document:
    return Document(
        id=str(row["id"]), case_id=row["case_id"], filename=row["filename"],
        content_type=row["content_type"], size=row["size_bytes"], pages=row["pages"],
        sha256=bytes(row["sha256"]).hex(), uploaded_by=row["uploaded_by"],
        uploader_role=row["uploader_role"], uploaded_at=row["uploaded_at"],
        event_seq=row["event_seq"],
    )
