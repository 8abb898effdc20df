-- Barcode time nodes (D12) and evaluations tied to their case (D10).

-- A ticket's scan nodes are read back by ticket for its REST view and for the
-- next scan's decision; they are hall events of type ticket.node.
CREATE INDEX hall_events_ticket_node ON hall_events (hall_id, (data->>'ticket_id'))
    WHERE type = 'ticket.node';

-- The case a ticket opened, found by the ticket when a rating comes in.
CREATE INDEX case_progress_ticket ON case_progress (hall_id, ticket_id, at);

-- A rating now names its case and service, and may come from an evaluation
-- page holding a token instead of a device.
ALTER TABLE evaluations
    ADD COLUMN case_id    text,
    ADD COLUMN service_id text,
    ADD COLUMN via        text NOT NULL DEFAULT 'device' CHECK (via IN ('device', 'token')),
    ALTER COLUMN device_id DROP NOT NULL;

-- What evaluation.request handed out: a page with the token may rate that
-- ticket at that window once. Only the token's SHA-256 is kept.
CREATE TABLE evaluation_requests (
    hall_id      text        NOT NULL,
    token_sha256 text        NOT NULL,
    ticket_id    text        NOT NULL,
    window_id    text        NOT NULL,
    staff_id     text,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, token_sha256)
);
CREATE INDEX evaluation_requests_expiry ON evaluation_requests (expires_at);
