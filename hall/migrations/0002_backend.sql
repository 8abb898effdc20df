-- What the approval backend pushes: its item catalog (Q9), appointments
-- (Q1) and the progress of cases (D11). The hall's queueing layout stays the
-- hall's own; catalog items describe the services it offers.

CREATE TABLE catalog_items (
    hall_id    text        NOT NULL,
    code       text        NOT NULL,   -- the backend's item code; a hall service with this id is linked
    name       text        NOT NULL,
    category   text        NOT NULL,
    department text        NOT NULL DEFAULT '',
    materials  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    guide_url  text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, code)
);

CREATE TABLE appointments (
    hall_id    text        NOT NULL,
    code       text        NOT NULL,   -- what the citizen types or scans at the kiosk
    service    text        NOT NULL,
    slot_start timestamptz NOT NULL,
    slot_end   timestamptz NOT NULL,
    citizen_id bigint      REFERENCES citizens (id),
    status     text        NOT NULL DEFAULT 'booked'
               CHECK (status IN ('booked', 'checking_in', 'checked_in', 'cancelled')),
    ticket_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, code)
);
CREATE INDEX appointments_slot ON appointments (hall_id, slot_start);

CREATE TABLE case_progress (
    id          bigserial   PRIMARY KEY,
    hall_id     text        NOT NULL,
    case_id     text        NOT NULL,
    ticket_id   text,
    status      text        NOT NULL,
    message     text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_progress_case ON case_progress (hall_id, case_id, at);
