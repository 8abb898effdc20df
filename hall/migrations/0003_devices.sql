-- The device bus. A device's request is answered once: the answer is kept
-- (in the same transaction as the change it made) and a retry gets it again.

CREATE TABLE device_replies (
    hall_id    text        NOT NULL,
    device_id  text        NOT NULL,
    request_id text        NOT NULL,
    reply      jsonb       NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, device_id, request_id)
);
CREATE INDEX device_replies_at ON device_replies (at);

-- Devices a manager let in after they connected unannounced.
CREATE TABLE device_approvals (
    hall_id     text        NOT NULL,
    device_id   text        NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    area        text,
    window_id   text,
    screen      text,
    approved_by text        NOT NULL,
    approved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, device_id)
);

-- Ratings from the window's evaluation terminal (D10), tied to the ticket,
-- the window and the staff who served it.
CREATE TABLE evaluations (
    id        bigserial   PRIMARY KEY,
    hall_id   text        NOT NULL,
    ticket_id text        NOT NULL,
    window_id text        NOT NULL,
    staff_id  text,
    rating    smallint    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    reasons   jsonb       NOT NULL DEFAULT '[]'::jsonb,
    device_id text        NOT NULL,
    at        timestamptz NOT NULL,
    UNIQUE (hall_id, ticket_id, window_id)
);
