-- Citizen notifications (Q6, Q11, D11, G6): what is to be sent, every try to
-- send it, where the notifier is in the event log, and the citizens' own
-- channel choices. See docs/notifications.md.

-- One row per message: derived from a durable cause (an event, a booking, a
-- case step) and keyed by it, so the same cause never makes a second message.
CREATE TABLE outbox (
    id              bigserial   PRIMARY KEY,
    hall_id         text        NOT NULL,
    idem_key        text        NOT NULL,   -- rule:cause:channel, also sent to the gateway
    rule            text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('sms', 'wechat')),
    gateway         text        NOT NULL,
    citizen_id      bigint      REFERENCES citizens (id) ON DELETE SET NULL,
    ticket_id       text,
    service         text,
    template_id     text        NOT NULL DEFAULT '',
    text            text        NOT NULL,   -- rendered; no personal data (numbers, times, places)
    params          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        int         NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (hall_id, idem_key)
);
CREATE INDEX outbox_due ON outbox (hall_id, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_recent ON outbox (hall_id, id DESC);
CREATE INDEX outbox_ticket ON outbox (hall_id, ticket_id);

CREATE TABLE outbox_attempts (
    id          bigserial   PRIMARY KEY,
    outbox_id   bigint      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    status      text        NOT NULL,   -- sent, error, failed, interrupted
    http_status int,
    error       text,
    duration_ms int
);
CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id, id);

-- How far the notifier has read the event log. A hall that already has events
-- starts where it is now (no messages about the past), disabled until a
-- server with notifications switched on takes it over.
CREATE TABLE notify_cursor (
    hall_id  text    PRIMARY KEY,
    last_seq bigint  NOT NULL,
    enabled  boolean NOT NULL DEFAULT true
);
INSERT INTO notify_cursor (hall_id, last_seq, enabled)
SELECT hall_id, max(seq), false FROM hall_events GROUP BY hall_id;

-- A citizen's own choice of channels (Q11) and WeChat openid, sealed like the
-- rest of their identity (field "wechat_openid").
CREATE TABLE notify_contacts (
    citizen_id        bigint      PRIMARY KEY REFERENCES citizens (id) ON DELETE CASCADE,
    hall_id           text        NOT NULL,
    channels          text[]      NOT NULL,
    wechat_openid_enc bytea,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Causes that are rows, not events: a booking the backend imports and a case
-- step it reports are written by hall/backend.py without an event; a trigger
-- notes each in the same transaction, so none is missed while the hall is
-- down, and wakes the notifier (LISTEN hall_notify) instead of it polling.
CREATE TABLE notify_intake (
    id         bigserial   PRIMARY KEY,
    hall_id    text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('booked', 'case')),
    key        text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_intake_hall ON notify_intake (hall_id, id);

CREATE FUNCTION notify_intake_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM notify_cursor WHERE hall_id = NEW.hall_id AND enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO notify_intake (hall_id, kind, key) VALUES (NEW.hall_id, TG_ARGV[0], NEW.id::text);
    PERFORM pg_notify('hall_notify', NEW.hall_id);
    RETURN NULL;
END
$$;

-- Bookings made in the hall's own pages come as appointment.booked events;
-- only the backend's imports need the trigger.
CREATE TRIGGER appointments_notify AFTER INSERT ON appointments
    FOR EACH ROW WHEN (NEW.channel = 'backend') EXECUTE FUNCTION notify_intake_row('booked');
CREATE TRIGGER case_progress_notify AFTER INSERT ON case_progress
    FOR EACH ROW EXECUTE FUNCTION notify_intake_row('case');
