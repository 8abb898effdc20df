-- Statistics (Q13). The event log stays the truth: these tables are derived from
-- it once a business day is over (hall/stats.py) and can be rebuilt from it for
-- any day at any time, so nothing here is ever the only copy of a fact.

-- One row per ticket of a finished business day: what the reports by hour read,
-- and what the daily rollups are summed from.
CREATE TABLE ticket_facts (
    hall_id    text        NOT NULL,
    day        date        NOT NULL,   -- the business day the ticket was issued on
    ticket_id  text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    hour       smallint    NOT NULL,   -- local hour of issue, 0-23
    source     text        NOT NULL,   -- queueing.Source
    service_id text        NOT NULL,   -- the (first) service the ticket was issued for
    area_id    text        NOT NULL,   -- of the last window that called it; '' if none did
    window_id  text        NOT NULL,   -- the last window that called it; '' if none did
    staff_id   text        NOT NULL,   -- who was logged in there at that call; '' if none
    outcome    text        NOT NULL,   -- finished, abandoned, cancelled, expired, open
    wait_s     integer,                -- issue to first call, whole seconds; NULL if never called
    service_s  integer,                -- time served at every window, whole seconds; NULL if not served
    skips      smallint    NOT NULL DEFAULT 0,
    transfers  smallint    NOT NULL DEFAULT 0,
    rating     smallint,               -- the ticket's latest evaluation, 1-5
    PRIMARY KEY (hall_id, day, ticket_id)
);

-- Per day x dimension x key: counts, sums and histograms of wait and service
-- seconds in fixed buckets (hall/stats_tables.py BUCKET_EDGES), packed as
-- little-endian uint32, so a p90 over any range is exact to its bucket; and
-- the day's own p90s (the upper edge of their bucket), so that a report by day
-- reads no histogram at all. dim is one of hall (key ''), source, area,
-- service, window, staff.
CREATE TABLE daily_rollups (
    hall_id      text    NOT NULL,
    dim          text    NOT NULL,
    day          date    NOT NULL,
    key          text    NOT NULL,
    tickets      integer NOT NULL,
    served       integer NOT NULL,
    no_shows     integer NOT NULL,   -- abandoned after the allowed skips
    skipped      integer NOT NULL,   -- tickets skipped at least once
    transfers    integer NOT NULL,   -- transfer events
    cancelled    integer NOT NULL,
    expired      integer NOT NULL,
    wait_n       integer NOT NULL,
    wait_sum     bigint  NOT NULL,
    service_n    integer NOT NULL,
    service_sum  bigint  NOT NULL,
    rating_n     integer NOT NULL,
    rating_sum   integer NOT NULL,
    rating_low   integer NOT NULL,   -- ratings of 1 or 2 stars
    wait_p90     integer,            -- seconds; NULL when nobody was called
    service_p90  integer,            -- seconds; NULL when nobody was served
    wait_hist    bytea   NOT NULL,
    service_hist bytea   NOT NULL,
    PRIMARY KEY (hall_id, dim, day, key)
);

-- The same per calendar month (month = its first day), summed from the daily
-- rows whenever a day of the month is rolled up: reports by month over whole
-- months read twelve rows a year per key instead of every day's histograms.
CREATE TABLE monthly_rollups (LIKE daily_rollups INCLUDING ALL);
ALTER TABLE monthly_rollups RENAME COLUMN day TO month;

-- The days that are rolled up, so a restart knows which finished days still
-- need it and a report can say which days of its range are not in yet.
CREATE TABLE stats_days (
    hall_id   text        NOT NULL,
    day       date        NOT NULL,
    tickets   integer     NOT NULL,
    last_seq  bigint      NOT NULL,   -- the last event of the day the facts were made from
    rolled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hall_id, day)
);

-- Today's ratings for the live figures, without reading a year of them.
CREATE INDEX evaluations_at ON evaluations (hall_id, at);
