-- The hall's durable record. Events are the truth: the engine's state is
-- rebuilt from the day's events at start-up, and statistics read them too.

CREATE TABLE hall_events (
    hall_id     text        NOT NULL,
    seq         bigint      NOT NULL,   -- per hall, assigned by its one writer, gap-free
    day         date        NOT NULL,   -- the business day the event belongs to
    at          timestamptz NOT NULL,   -- hall time of the event
    type        text        NOT NULL,
    data        jsonb       NOT NULL,   -- queueing.codec form, without personal data
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, seq)
);
CREATE INDEX hall_events_day ON hall_events (hall_id, day, seq);
CREATE INDEX hall_events_type ON hall_events (hall_id, type, at);

-- Personal data, encrypted field by field (AES-GCM); the engine and the
-- event log only ever see the citizen's id.
CREATE TABLE citizens (
    id             bigserial   PRIMARY KEY,
    hall_id        text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    id_number_enc  bytea,
    name_enc       bytea,
    phone_enc      bytea,
    id_number_hmac bytea       -- keyed hash, to find a citizen by ID number without decrypting
);
CREATE INDEX citizens_id_number ON citizens (hall_id, id_number_hmac);

CREATE TABLE staff (
    id            text        PRIMARY KEY,
    name          text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'manager', 'staff')),
    password_hash text,                   -- argon2; NULL for staff who log in through OIDC
    oidc_subject  text        UNIQUE,
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    token_hash bytea       PRIMARY KEY,  -- sha256 of the bearer token; the token itself is never stored
    staff_id   text        NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    remote     text
);
CREATE INDEX sessions_staff ON sessions (staff_id);

-- Who did what, when, from where: every staff action and configuration change.
CREATE TABLE audit_log (
    id      bigserial   PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    hall_id text,
    actor   text        NOT NULL,
    role    text        NOT NULL,
    action  text        NOT NULL,
    target  text,
    detail  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    remote  text
);
CREATE INDEX audit_log_at ON audit_log (hall_id, at);
