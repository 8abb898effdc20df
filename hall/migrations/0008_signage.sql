-- Signage content (D8) and guides (D1, D3, D4, D5): what managers edit for the
-- hall's screens, touch-query terminals, kiosks and mobile pages.

-- Layouts, content items, screen groups and schedules, each as its checked
-- JSON (signage/model.py; hall/signage_store.py reads and writes it). Their
-- references to one another are checked by the server under one advisory lock
-- per hall, so two managers editing at once cannot leave a schedule pointing
-- at a layout that is gone.
CREATE TABLE signage_content (
    hall_id    text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('layout', 'item', 'group', 'schedule')),
    id         text        NOT NULL,
    spec       jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, kind, id)
);

-- Urgent notices pushed to every screen until they expire or are withdrawn.
CREATE TABLE signage_notices (
    hall_id      text        NOT NULL,
    id           text        NOT NULL,
    text         text        NOT NULL,
    level        text        NOT NULL CHECK (level IN ('urgent', 'warning', 'info')),
    starts_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL CHECK (expires_at > starts_at),
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    withdrawn_at timestamptz,
    withdrawn_by text,
    PRIMARY KEY (hall_id, id)
);
CREATE INDEX signage_notices_live ON signage_notices (hall_id, expires_at)
    WHERE withdrawn_at IS NULL;

-- A service guide's own wording (D1): what the catalog and the ticket text do not say.
CREATE TABLE service_guides (
    hall_id    text        NOT NULL,
    service_id text        NOT NULL,
    spec       jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, service_id)
);

-- Sample forms of a service (D1, D4): a link to a file elsewhere, or the file
-- itself (PDF, JPEG, PNG) for the tablets in the form-filling area.
CREATE TABLE guide_forms (
    hall_id      text        NOT NULL,
    id           uuid        NOT NULL,
    service_id   text        NOT NULL,
    title        text        NOT NULL,
    position     integer     NOT NULL DEFAULT 0,
    url          text,
    content_type text,
    size_bytes   integer,
    sha256       bytea,
    content      bytea,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, id),
    CHECK ((url IS NULL) <> (content IS NULL)),
    CHECK (content IS NULL OR (content_type IN ('application/pdf', 'image/jpeg', 'image/png')
                               AND size_bytes = octet_length(content)
                               AND octet_length(sha256) = 32))
);
CREATE INDEX guide_forms_service ON guide_forms (hall_id, service_id, position, created_at);
ALTER TABLE guide_forms ALTER COLUMN content SET STORAGE EXTERNAL;

-- Where a floor's areas and windows are drawn (D3); the floors, areas and
-- windows themselves are the hall configuration's.
CREATE TABLE floor_maps (
    hall_id    text        NOT NULL,
    floor      integer     NOT NULL,
    spec       jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, floor)
);

-- A camera stream address per window (D5), for supervision: the hall stores
-- and hands out the link and records nothing.
CREATE TABLE window_cameras (
    hall_id    text        NOT NULL,
    window_id  text        NOT NULL,
    url        text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, window_id)
);
