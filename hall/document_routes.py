"""Scanned materials for a case (D7): the window's document camera or its staff
upload them, the approval backend lists and fetches them, and hears of each new
one on the event stream (``case.document_added``).

The body of an upload is the file itself (``Content-Type: image/jpeg`` or
``application/pdf``), not a multipart form: a camera sends one file per request,
and a raw body can be checked and size-limited while it streams. The file name,
which may be Chinese, travels percent-encoded in ``?filename=``.

A document may be attached to a case the hall has not heard of: the backend
opens a case when the window starts the application, and tells the hall of it
only with its first progress report, usually after the materials were scanned.
The case id is checked for form only, and the answer says whether the hall
knows the case (``case_known``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, Field

from devices.topics import DeviceKind
from hall.api.problems import Problem
from hall.api.routing import read_body
from hall.auth import Role, require
from hall.documents import (
    CONTENT_TYPES,
    MAX_DOCUMENT_BYTES,
    PDF,
    BadDocument,
    Document,
    DocumentStore,
    inspect_content,
)
from hall.hall_events import CaseDocumentAdded, ScanRequested
from hall.routes import PEOPLE, WINDOW_ACTORS, acting_at, api, server_of, storage_errors
from hall.server import HallServer

UPLOADERS = ("device", "staff", "manager", "admin")
"""A document camera holds a device token; window staff scanning from their own
PC use their session. The backend has the documents already and uploads none."""
LISTERS = (*PEOPLE, "backend")
FETCHERS = ("backend",)
"""Only the backend reads the scans themselves: they are copies of ID cards and
certificates, which staff see in the backend's case file, not through the hall."""

CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\"\\/]")


class UploadQuery(BaseModel):
    filename: str | None = Field(None, max_length=200,
                                 description="The file's name, as the backend should show it")


class DocumentOut(BaseModel):
    id: str
    case_id: str
    filename: str
    content_type: str
    size: int
    pages: int | None
    sha256: str = Field(description="Hex SHA-256 of the bytes")
    uploaded_by: str
    uploaded_at: datetime
    seq: int | None = Field(description="Sequence number of its case.document_added event")


class UploadOut(DocumentOut):
    duplicate: bool = Field(description="The same bytes were attached to this case before")
    case_known: bool = Field(description="The hall has progress reports for this case")


@api.post("/cases/{case_id}/documents", query=UploadQuery, response=UploadOut, status=201,
          roles=UPLOADERS, tags=("cases",),
          summary="Attach a scanned document (JPEG or PDF) to a case")
async def upload_document(
    request: web.Request, case_id: str, query: UploadQuery
) -> UploadOut | web.Response:
    """The body is the file. 201 with the stored document; 200 with the earlier one
    when the same bytes were attached to this case before (a retried upload)."""
    principal = require(request, *(Role(role) for role in UPLOADERS))
    _check_case_id(case_id)
    content_type = request.content_type
    if content_type not in CONTENT_TYPES:
        raise Problem(415, "unsupported_media_type", "Unsupported document type",
                      f"Content-Type must be one of {', '.join(CONTENT_TYPES)}",
                      headers={"Accept-Post": ", ".join(CONTENT_TYPES)},
                      accepted=list(CONTENT_TYPES))
    content = await read_body(request, MAX_DOCUMENT_BYTES)
    if not content:
        raise Problem(422, "empty_document", "The document is empty")
    try:
        pages = inspect_content(content_type, content)
    except BadDocument as error:
        raise Problem(422, "content_mismatch", f"The body is not {content_type}",
                      str(error)) from error
    server = server_of(request)
    store = DocumentStore(server.pool, server.config.layout.hall_id)
    filename = _filename(query.filename, case_id, content_type)
    document, created = await store.add(case_id, filename, content_type, content, pages,
                                        principal)
    if document.event_seq is None:
        document = await _announce(request, store, document)
    await server.audit.record(principal, "document.upload", document.id, {
        "case_id": case_id, "sha256": document.sha256, "size": document.size,
        "content_type": content_type, "pages": pages, "duplicate": not created,
    })
    answer = UploadOut(**_out(document).model_dump(), duplicate=not created,
                       case_known=bool(await server.backend.case(case_id)))
    if created:
        return answer
    return web.Response(status=200, body=answer.model_dump_json(),
                        content_type="application/json")


@api.get("/cases/{case_id}/documents", response=list[DocumentOut], roles=LISTERS,
         tags=("cases",), summary="The documents attached to a case, without their bytes")
async def list_documents(request: web.Request, case_id: str) -> list[DocumentOut]:
    require(request, *(Role(role) for role in LISTERS))
    server = server_of(request)
    store = DocumentStore(server.pool, server.config.layout.hall_id)
    return [_out(document) for document in await store.of_case(case_id)]


@api.get("/cases/{case_id}/documents/{document_id}", roles=FETCHERS, tags=("cases",),
         summary="A document's bytes, as uploaded")
async def get_document(request: web.Request, case_id: str, document_id: str) -> web.Response:
    require(request, Role.BACKEND)
    server = server_of(request)
    found = await DocumentStore(server.pool, server.config.layout.hall_id).content(
        case_id, document_id)
    if found is None:
        raise Problem(404, "unknown_document", f"No document {document_id!r} in case {case_id!r}")
    document, content = found
    return web.Response(body=content, content_type=document.content_type, headers={
        "Content-Disposition": _disposition(document.filename),
        "ETag": f'"{document.sha256}"',
        "Cache-Control": "private, no-store",
    })


async def _announce(request: web.Request, store: DocumentStore, document: Document) -> Document:
    """Tell the stream's subscribers. The document is stored first and marked once
    its event is durable: when the hall cannot log events now, the upload answers
    503 and its retry (the same bytes) announces the stored document."""
    server = server_of(request)
    added = CaseDocumentAdded(
        at=server.runtime.clock.now(), case_id=document.case_id, document_id=document.id,
        sha256=document.sha256, size=document.size, content_type=document.content_type,
        pages=document.pages,
    )
    with storage_errors():
        stored = await server.runtime.record([added])
    seq = stored[0].seq
    await store.announced(document.id, seq)
    return replace(document, event_seq=seq)


def _check_case_id(case_id: str) -> None:
    if CASE_ID.fullmatch(case_id) is None:
        raise Problem(422, "invalid_case_id", "Not a case id",
                      "A case id is 1 to 64 letters, digits, '.', '_', ':' or '-'")


def _filename(given: str | None, case_id: str, content_type: str) -> str:
    """The last path component, without control characters or quotes; the case id
    with the type's extension when none is given."""
    name = _UNSAFE_NAME.sub("", (given or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return f"{case_id}.{'pdf' if content_type == PDF else 'jpg'}"
    return name


def _disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback name, and the real one in UTF-8 (RFC 8187)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=document.id, case_id=document.case_id, filename=document.filename,
        content_type=document.content_type, size=document.size, pages=document.pages,
        sha256=document.sha256, uploaded_by=document.uploaded_by,
        uploaded_at=document.uploaded_at, seq=document.event_seq,
    )


class ScanIn(BaseModel):
    case_id: str = Field(pattern=CASE_ID.pattern, description="The backend's case id")
    paper: Literal["A4", "A3"] = "A4"
    dpi: int = Field(200, ge=75, le=600)
    format: Literal["pdf", "jpeg"] = "pdf"


class ScanOut(BaseModel):
    job: str = Field(description="The job's id: camera.scan_finished on the stream names it")
    case_id: str
    cameras: list[str] = Field(description="The document cameras at the window asked to scan")
    seq: int = Field(description="Sequence number of the camera.scan_requested event")


@api.post("/windows/{window_id}/scan", body=ScanIn, response=ScanOut, status=202,
          roles=WINDOW_ACTORS, tags=("cases",),
          summary="Scan the material under the window's document camera into a case")
async def scan_at_window(request: web.Request, window_id: str, body: ScanIn) -> ScanOut:
    """Accepted, not done: the camera scans and uploads in its own time (a second or
    two) and the outcome comes as ``camera.scan_finished`` on the event stream."""
    principal = acting_at(request, window_id)
    server = server_of(request)
    cameras = tuple(status.id for status in server.devices.by_window(window_id)
                    if status.kind is DeviceKind.DOCUMENT_CAMERA)
    if not cameras:
        raise Problem(409, "no_camera", "No document camera at this window",
                      f"No device of kind document_camera is configured at {window_id}")
    online = tuple(camera for camera in cameras if _online(server, camera))
    if not online:
        raise Problem(409, "camera_offline", "The window's document camera is offline",
                      f"{', '.join(cameras)} offline")
    job = f"scan-{uuid.uuid4().hex[:16]}"
    requested = ScanRequested(
        at=server.runtime.clock.now(), window_id=window_id, job=job, case_id=body.case_id,
        paper=body.paper, dpi=body.dpi, format=body.format, cameras=online)
    with storage_errors():
        stored = await server.runtime.record([requested])
    await server.audit.record(principal, "document.scan", job, {
        "case_id": body.case_id, "window": window_id, "cameras": list(online)})
    return ScanOut(job=job, case_id=body.case_id, cameras=list(online), seq=stored[0].seq)


def _online(server: HallServer, device_id: str) -> bool:
    status = server.devices.status(device_id)
    return status is not None and status.online
