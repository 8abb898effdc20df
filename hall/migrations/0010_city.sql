-- Where each hall of a city is served (hall/city.py). The advisory lock a leading
-- process holds is the truth about who leads; this row only says where that process
-- serves the hall, for the city port's redirects and /city/halls. A row whose lock
-- nobody holds is stale and is not used.
CREATE TABLE city_leaders (
    hall_id  text        PRIMARY KEY,
    process  text        NOT NULL,
    url      text        NOT NULL,
    since    timestamptz NOT NULL DEFAULT now()
);
