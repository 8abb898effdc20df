-- Appointments booked in the hall's own pages (Q1, M1), next to those the
-- backend imports: slot capacity, the late and missed policy, and the mobile
-- page's per-phone ticket limit.

ALTER TABLE appointments DROP CONSTRAINT appointments_status_check;
ALTER TABLE appointments ADD CONSTRAINT appointments_status_check
    CHECK (status IN ('booked', 'checking_in', 'checked_in', 'cancelled', 'missed'));

ALTER TABLE appointments
    -- events name an appointment by this, never by its code, which checks it in
    ADD COLUMN id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- 'backend' for imported bookings, which hold no place in appointment_slots
    ADD COLUMN channel       text NOT NULL DEFAULT 'backend'
               CHECK (channel IN ('backend', 'mobile', 'portal', 'staff')),
    ADD COLUMN phone_hmac    bytea,   -- lookup hashes (hall/pii.py) for the per-citizen limit
    ADD COLUMN id_hmac       bytea,
    ADD COLUMN checked_in_at timestamptz,
    ADD COLUMN checked_in_as text CHECK (checked_in_as IN ('appointment', 'walk_in')),
    ADD COLUMN missed_seq    bigint;  -- the appointment.missed event; NULL until announced

CREATE INDEX appointments_open ON appointments (hall_id, slot_end) WHERE status = 'booked';
CREATE INDEX appointments_phone ON appointments (hall_id, phone_hmac) WHERE phone_hmac IS NOT NULL;
CREATE INDEX appointments_id_hmac ON appointments (hall_id, id_hmac) WHERE id_hmac IS NOT NULL;
CREATE INDEX appointments_unannounced ON appointments (hall_id)
    WHERE status = 'missed' AND missed_seq IS NULL;

-- One row per slot that has ever been booked: the row lock of its conditional
-- update is what lets exactly one of two bookings racing for the last place in.
CREATE TABLE appointment_slots (
    hall_id    text        NOT NULL,
    service    text        NOT NULL,
    slot_start timestamptz NOT NULL,
    capacity   integer     NOT NULL CHECK (capacity >= 0),
    booked     integer     NOT NULL DEFAULT 0 CHECK (booked >= 0),
    CHECK (booked <= capacity),
    PRIMARY KEY (hall_id, service, slot_start)
);

-- Remote tickets taken by a phone number on a day (M1).
CREATE TABLE remote_ticket_quota (
    hall_id    text    NOT NULL,
    day        date    NOT NULL,
    phone_hmac bytea   NOT NULL,
    taken      integer NOT NULL CHECK (taken >= 0),
    PRIMARY KEY (hall_id, day, phone_hmac)
);
