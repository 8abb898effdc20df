-- Scanned materials attached to a case (D7): what the document camera or the
-- window's staff uploaded, kept until the approval backend has fetched it.
-- The same bytes for the same case are one document, so a retried upload
-- cannot store it twice.

CREATE TABLE case_documents (
    hall_id       text        NOT NULL,
    id            uuid        NOT NULL,
    case_id       text        NOT NULL,   -- the backend's case code; the hall may not know it yet
    filename      text        NOT NULL,
    content_type  text        NOT NULL CHECK (content_type IN ('image/jpeg', 'application/pdf')),
    size_bytes    integer     NOT NULL CHECK (size_bytes > 0),
    pages         integer,                -- NULL for a PDF whose page count was not readable
    sha256        bytea       NOT NULL CHECK (octet_length(sha256) = 32),
    content       bytea       NOT NULL,
    uploaded_by   text        NOT NULL,   -- the principal: a device's token name or a staff id
    uploader_role text        NOT NULL,
    remote        text,
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    event_seq     bigint,                 -- the case.document_added event; NULL until announced
    PRIMARY KEY (hall_id, id),
    UNIQUE (hall_id, case_id, sha256)
);
CREATE INDEX case_documents_case ON case_documents (hall_id, case_id, uploaded_at);

-- JPEG and PDF are compressed already: TOAST's compression would only cost CPU.
ALTER TABLE case_documents ALTER COLUMN content SET STORAGE EXTERNAL;
