"""Service guides, sample forms, floor maps and window cameras (D1, D3, D4, D5), in
PostgreSQL: what the touch-query terminals, kiosks and mobile pages show a citizen
besides the queue, and the supervision links staff open.

A guide is put together, not written whole: its name, category and materials come
from the backend's catalog (Q9) and the hall's ticket text (Q3), which stay the
truth for those; a manager adds only what they lack (a summary, steps, the fee,
the time limit) and the sample forms. So a catalog sync changes every guide at once
and nobody keeps two lists of materials in step.

Sample forms are links to files elsewhere, or the files themselves (PDF, JPEG, PNG,
checked against their formats' signatures) kept in the database like case
documents, for tablets in the form-filling area that have no other file server.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hall.documents import PDF, BadDocument, jpeg_size, pdf_pages

PNG = "image/png"
JPEG = "image/jpeg"
FORM_TYPES = (PDF, JPEG, PNG)
MAX_FORM_BYTES = 10 * 1024 * 1024
"""A scanned A4 sample form of a few pages; a tablet should not wait for more."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_form(content_type: str, data: bytes) -> None:
    """Raises BadDocument when the bytes are not what ``content_type`` says."""
    if content_type == PDF:
        pdf_pages(data)
    elif content_type == JPEG:
        jpeg_size(data)
    elif content_type == PNG:
        # PNG (ISO/IEC 15948, 5.2 and 11.2.2): the signature, then the IHDR chunk.
        if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
            raise BadDocument("a PNG starts with its signature and an IHDR chunk")
    else:
        raise BadDocument(f"{content_type} is not a form type")


@dataclass(frozen=True, slots=True)
class Form:
    id: str
    service_id: str
    title: str
    url: str | None
    """For a link; None for a stored file."""
    content_type: str | None
    size: int | None
    sha256: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Camera:
    window_id: str
    url: str
    label: str
    updated_by: str
    updated_at: datetime


class GuideStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    # ------------------------------------------------------------ guides

    async def guide(self, service_id: str) -> tuple[dict[str, Any], datetime] | None:
        row = await self._pool.fetchrow(
            "SELECT spec, updated_at FROM service_guides WHERE hall_id = $1 AND service_id = $2",
            self._hall_id, service_id)
        return None if row is None else (json.loads(row["spec"]), row["updated_at"])

    async def put_guide(self, connection: asyncpg.Connection, service_id: str,
                        spec: dict[str, Any], actor: str) -> None:
        await connection.execute(
            "INSERT INTO service_guides (hall_id, service_id, spec, updated_by)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (hall_id, service_id) DO UPDATE"
            " SET spec = excluded.spec, updated_by = excluded.updated_by, updated_at = now()",
            self._hall_id, service_id, json.dumps(spec, ensure_ascii=False), actor)

    # ------------------------------------------------------------ forms

    async def forms(self, service_id: str | None = None) -> list[Form]:
        rows = await self._pool.fetch(
            f"SELECT {_FORM_COLUMNS} FROM guide_forms WHERE hall_id = $1"
            " AND ($2::text IS NULL OR service_id = $2) ORDER BY service_id, position,"
            " created_at, id",
            self._hall_id, service_id)
        return [_form(row) for row in rows]

    async def add_form(self, connection: asyncpg.Connection, service_id: str, title: str,
                       actor: str, *, url: str | None = None, content_type: str | None = None,
                       content: bytes | None = None) -> Form:
        digest = hashlib.sha256(content).digest() if content is not None else None
        row = await connection.fetchrow(
            f"INSERT INTO guide_forms (hall_id, id, service_id, title, position, url,"
            f" content_type, size_bytes, sha256, content, created_by)"
            f" VALUES ($1, $2, $3, $4, (SELECT coalesce(max(position) + 1, 0) FROM guide_forms"
            f"  WHERE hall_id = $1 AND service_id = $3), $5, $6, $7, $8, $9, $10)"
            f" RETURNING {_FORM_COLUMNS}",
            self._hall_id, uuid.uuid4(), service_id, title, url, content_type,
            None if content is None else len(content), digest, content, actor)
        return _form(row)

    async def form_content(self, service_id: str, form_id: str) -> tuple[Form, bytes | None] | None:
        key = _uuid(form_id)
        if key is None:
            return None
        row = await self._pool.fetchrow(
            f"SELECT {_FORM_COLUMNS}, content FROM guide_forms"
            " WHERE hall_id = $1 AND service_id = $2 AND id = $3",
            self._hall_id, service_id, key)
        if row is None:
            return None
        return _form(row), None if row["content"] is None else bytes(row["content"])

    async def delete_form(self, connection: asyncpg.Connection, service_id: str,
                          form_id: str) -> bool:
        key = _uuid(form_id)
        if key is None:
            return False
        status: str = await connection.execute(
            "DELETE FROM guide_forms WHERE hall_id = $1 AND service_id = $2 AND id = $3",
            self._hall_id, service_id, key)
        return status != "DELETE 0"

    # ------------------------------------------------------------ floor maps

    async def floor_maps(self) -> dict[int, dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT floor, spec FROM floor_maps WHERE hall_id = $1", self._hall_id)
        return {row["floor"]: json.loads(row["spec"]) for row in rows}

    async def put_floor_map(self, connection: asyncpg.Connection, floor: int,
                            spec: dict[str, Any], actor: str) -> None:
        await connection.execute(
            "INSERT INTO floor_maps (hall_id, floor, spec, updated_by)"
            " VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (hall_id, floor) DO UPDATE"
            " SET spec = excluded.spec, updated_by = excluded.updated_by, updated_at = now()",
            self._hall_id, floor, json.dumps(spec, ensure_ascii=False), actor)

    # ------------------------------------------------------------ cameras

    async def cameras(self) -> list[Camera]:
        rows = await self._pool.fetch(
            "SELECT window_id, url, label, updated_by, updated_at FROM window_cameras"
            " WHERE hall_id = $1 ORDER BY window_id", self._hall_id)
        return [Camera(r["window_id"], r["url"], r["label"], r["updated_by"],
                       r["updated_at"]) for r in rows]

    async def put_camera(self, connection: asyncpg.Connection, window_id: str, url: str,
                         label: str, actor: str) -> Camera:
        row = await connection.fetchrow(
            "INSERT INTO window_cameras (hall_id, window_id, url, label, updated_by)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hall_id, window_id) DO UPDATE"
            " SET url = excluded.url, label = excluded.label, updated_by = excluded.updated_by,"
            " updated_at = now() RETURNING window_id, url, label, updated_by, updated_at",
            self._hall_id, window_id, url, label, actor)
        return Camera(row["window_id"], row["url"], row["label"], row["updated_by"],
                      row["updated_at"])

    async def delete_camera(self, connection: asyncpg.Connection, window_id: str) -> bool:
        status: str = await connection.execute(
            "DELETE FROM window_cameras WHERE hall_id = $1 AND window_id = $2",
            self._hall_id, window_id)
        return status != "DELETE 0"


_FORM_COLUMNS = "id, service_id, title, url, content_type, size_bytes, sha256, created_at"


def _form(row: Any) -> Form:
    digest = row["sha256"]
    return Form(str(row["id"]), row["service_id"], row["title"], row["url"],
                row["content_type"], row["size_bytes"],
                None if digest is None else bytes(digest).hex(), row["created_at"])


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def merge_materials(*sources: tuple[str, list[tuple[str, str]]]) -> list[dict[str, str]]:
    """Each material once, from the first source that lists it: ``sources`` are
    (source name, [(material, note)]) in the order of authority."""
    seen: set[str] = set()
    merged = []
    for source, materials in sources:
        for name, note in materials:
            key = "".join(name.split())
            if key and key not in seen:
                seen.add(key)
                merged.append({"name": name, "note": note, "source": source})
    return merged
