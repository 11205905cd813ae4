//! Schema migrations for PostgreSQL, applied in order inside one transaction each and
//! recorded in `schema_version`, as on SQLite. Never edit a shipped migration: add the next
//! one. Version 1 is SQLite's versions 1 to 6 at once, with PostgreSQL's types: the two
//! stores hold the same tables and columns, so `migrate --to` copies one into the other.
//!
//! Two differences, both so that concurrent writers need no read-modify-write: a rollup's
//! latency histogram is a `BIGINT[]` and its failures by kind a `JSONB` object, each added in
//! the same `INSERT … ON CONFLICT DO UPDATE` by a SQL function.

/// Migrations; the index plus one is the version each brings the schema to.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's migrations 1 to 6 build.
    r#"
    CREATE FUNCTION vantage_hist_add(a BIGINT[], b BIGINT[]) RETURNS BIGINT[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT array_agg(COALESCE(x, 0) + COALESCE(y, 0) ORDER BY i)
        FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
    $$;

    CREATE FUNCTION vantage_counts_add(a JSONB, b JSONB) RETURNS JSONB
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT COALESCE(jsonb_object_agg(k, n), '{}'::jsonb)
        FROM (SELECT key AS k, SUM(value::BIGINT) AS n
              FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e
              GROUP BY key) s
    $$;

    CREATE TABLE probes (
        id           TEXT PRIMARY KEY,
        region       TEXT NOT NULL,
        labels       TEXT NOT NULL,          -- JSON object
        token_hash   BYTEA NOT NULL UNIQUE,  -- SHA-256 of the bearer token
        created_ms   BIGINT NOT NULL,
        revoked_ms   BIGINT,
        last_seen_ms BIGINT
    );

    CREATE TABLE results (
        probe_id    TEXT NOT NULL,
        boot_id     TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        check_id    TEXT NOT NULL,
        vendor      TEXT NOT NULL,
        region      TEXT NOT NULL,
        started_ms  BIGINT NOT NULL,
        received_ms BIGINT NOT NULL,
        status      TEXT NOT NULL,
        failure     TEXT,
        total_ms    DOUBLE PRECISION NOT NULL,
        body        TEXT NOT NULL,           -- the result's JSON, as the probe sent it
        PRIMARY KEY (probe_id, boot_id, seq)
    );
    CREATE INDEX results_by_check ON results (check_id, started_ms);
    CREATE INDEX results_by_time ON results (started_ms);
    CREATE INDEX results_by_vendor ON results (vendor, started_ms);
    CREATE INDEX results_by_region ON results (region, started_ms);

    CREATE TABLE rollups (
        check_id     TEXT NOT NULL,
        probe_id     TEXT NOT NULL,
        minute_ms    BIGINT NOT NULL,
        region       TEXT NOT NULL,
        count        BIGINT NOT NULL,
        failures     BIGINT NOT NULL,
        slow         BIGINT NOT NULL,
        by_kind      JSONB NOT NULL,         -- failure label -> count
        latency      BIGINT[] NOT NULL,      -- LATENCY_BUCKETS counts
        probe_errors BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (check_id, probe_id, minute_ms)
    );
    CREATE INDEX rollups_by_time ON rollups (minute_ms);

    CREATE TABLE rollups_hourly (
        check_id     TEXT NOT NULL,
        hour_ms      BIGINT NOT NULL,        -- start of the UTC hour (Unix ms)
        region       TEXT NOT NULL,
        count        BIGINT NOT NULL,        -- runs, probe errors included
        failures     BIGINT NOT NULL,        -- status = fail
        probe_errors BIGINT NOT NULL,        -- status = probe_error
        slow         BIGINT NOT NULL,
        latency      BIGINT[] NOT NULL,
        PRIMARY KEY (check_id, hour_ms, region)
    );
    CREATE INDEX rollups_hourly_by_time ON rollups_hourly (hour_ms);

    CREATE TABLE rollups_daily (
        check_id     TEXT NOT NULL,
        day_ms       BIGINT NOT NULL,        -- start of the UTC day (Unix ms)
        region       TEXT NOT NULL,
        count        BIGINT NOT NULL,
        failures     BIGINT NOT NULL,
        probe_errors BIGINT NOT NULL,
        slow         BIGINT NOT NULL,
        latency      BIGINT[] NOT NULL,
        PRIMARY KEY (check_id, day_ms, region)
    );
    CREATE INDEX rollups_daily_by_time ON rollups_daily (day_ms);

    CREATE TABLE check_states (
        check_id   TEXT PRIMARY KEY,
        state      TEXT NOT NULL,            -- JSON: consensus::CheckState
        updated_ms BIGINT NOT NULL
    );

    CREATE TABLE vendor_states (
        vendor     TEXT PRIMARY KEY,
        status     TEXT NOT NULL,            -- JSON: consensus::vendor::VendorStatus
        updated_ms BIGINT NOT NULL
    );

    CREATE TABLE probe_health (
        probe_id   TEXT PRIMARY KEY,
        health     TEXT NOT NULL,            -- JSON: consensus::quarantine::ProbeHealth
        updated_ms BIGINT NOT NULL
    );

    CREATE TABLE transitions (
        id       BIGSERIAL PRIMARY KEY,
        check_id TEXT NOT NULL,
        vendor   TEXT NOT NULL,
        at_ms    BIGINT NOT NULL,
        body     TEXT NOT NULL               -- JSON: engine::CheckTransition
    );
    CREATE INDEX transitions_by_vendor ON transitions (vendor, at_ms);

    CREATE TABLE incidents (
        id             BIGSERIAL PRIMARY KEY,
        subject_kind   TEXT NOT NULL,        -- vendor | probe
        subject        TEXT NOT NULL,
        state          TEXT NOT NULL,
        summary        TEXT NOT NULL,
        opened_ms      BIGINT NOT NULL,
        updated_ms     BIGINT NOT NULL,
        resolved_ms    BIGINT,
        detail         TEXT NOT NULL,        -- JSON: what the incident is about now
        opened_state   TEXT NOT NULL DEFAULT '',
        clear_since_ms BIGINT,
        flaps          BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX incidents_open ON incidents (subject_kind, subject) WHERE resolved_ms IS NULL;
    CREATE INDEX incidents_by_time ON incidents (opened_ms);

    CREATE TABLE incident_events (
        incident_id BIGINT NOT NULL REFERENCES incidents (id),
        seq         BIGINT NOT NULL,
        at_ms       BIGINT NOT NULL,
        kind        TEXT NOT NULL,           -- opened | changed | resolved | notified | suppressed | …
        state       TEXT NOT NULL,
        detail      TEXT NOT NULL,           -- JSON
        PRIMARY KEY (incident_id, seq)
    );

    CREATE TABLE deliveries (
        incident_id  BIGINT NOT NULL REFERENCES incidents (id),
        receiver     TEXT NOT NULL,
        triggered_ms BIGINT,
        resolved_ms  BIGINT,
        last_sent_ms BIGINT,
        PRIMARY KEY (incident_id, receiver)
    );

    CREATE TABLE outbox (
        id           BIGSERIAL PRIMARY KEY,
        incident_id  BIGINT NOT NULL REFERENCES incidents (id),
        receiver     TEXT NOT NULL,
        event        TEXT NOT NULL,          -- trigger | update | resolve | reminder
        payload      TEXT NOT NULL,          -- JSON: alert::Alert
        created_ms   BIGINT NOT NULL,
        attempts     BIGINT NOT NULL DEFAULT 0,
        next_ms      BIGINT NOT NULL,
        delivered_ms BIGINT,
        last_error   TEXT,
        dead_ms      BIGINT
    );
    CREATE INDEX outbox_pending ON outbox (receiver, incident_id, id) WHERE delivered_ms IS NULL;

    CREATE TABLE silences (
        id         BIGSERIAL PRIMARY KEY,
        vendor     TEXT,
        check_id   TEXT,
        region     TEXT,
        starts_ms  BIGINT NOT NULL,
        ends_ms    BIGINT NOT NULL,
        comment    TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );

    CREATE TABLE vendor_history (
        id     BIGSERIAL PRIMARY KEY,
        vendor TEXT NOT NULL,
        region TEXT NOT NULL,                -- '' for the global state
        state  TEXT NOT NULL,                -- consensus::vendor::VendorState label
        at_ms  BIGINT NOT NULL               -- in force from then until the next row
    );
    CREATE INDEX vendor_history_by_scope ON vendor_history (vendor, region, at_ms);
    "#,
    // 2: several coordinators on one store (as SQLite's 7). Times are the server's clock,
    // `vantage_now_ms()`, never a coordinator's: leases expire by one clock for everyone.
    r#"
    CREATE FUNCTION vantage_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
        SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
    $$;

    CREATE TABLE coordinators (
        node         TEXT PRIMARY KEY,
        address      TEXT NOT NULL,
        version      TEXT NOT NULL,
        started_ms   BIGINT NOT NULL,
        heartbeat_ms BIGINT NOT NULL
    );

    CREATE TABLE leases (
        part        INTEGER PRIMARY KEY,
        holder      TEXT,
        epoch       BIGINT NOT NULL DEFAULT 0,
        expires_ms  BIGINT NOT NULL DEFAULT 0,
        acquired_ms BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO leases (part) SELECT generate_series(0, 15);

    CREATE TABLE coverage (
        part    INTEGER NOT NULL,
        epoch   BIGINT NOT NULL,
        node    TEXT NOT NULL,
        from_ms BIGINT NOT NULL,
        to_ms   BIGINT NOT NULL,
        PRIMARY KEY (part, epoch)
    );
    CREATE INDEX coverage_by_time ON coverage (part, to_ms);

    ALTER TABLE incidents ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claim_until_ms BIGINT;

    -- The feed of committed results that every coordinator's engine follows: ordered by
    -- (writing transaction, insert order) and read only below the oldest transaction still
    -- running, so that a result committed late is never skipped.
    ALTER TABLE results ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
    ALTER TABLE results ADD COLUMN feed_id BIGSERIAL;
    CREATE INDEX results_feed ON results (tx, feed_id);
    "#,
    // 3: which store handle wrote each result (a random number a process), so that the feed
    // of a coordinator skips the results it wrote and handed to its engine itself.
    // Rollup rows are updated many times each as results come in: room on their pages keeps
    // those updates on the page (HOT), without new index entries. Histograms add by position,
    // without sorting.
    r#"
    ALTER TABLE results ADD COLUMN writer BIGINT;
    ALTER TABLE rollups SET (fillfactor = 70);
    ALTER TABLE rollups_hourly SET (fillfactor = 70);
    ALTER TABLE rollups_daily SET (fillfactor = 70);
    CREATE OR REPLACE FUNCTION vantage_hist_add(a BIGINT[], b BIGINT[]) RETURNS BIGINT[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT ARRAY(SELECT COALESCE(a[i], 0) + COALESCE(b[i], 0)
                     FROM generate_series(1, GREATEST(cardinality(a), cardinality(b))) AS i)
    $$;
    "#,
    // 4: SLA reports read less. Minute rollups keyed (check, minute, probe), so that a window
    // of one check is one range of the key whatever its probes (it was one range per probe,
    // and the ragged ends of a cold report waited on each): only the index is rebuilt. A
    // 10-minute tier, so that the ends of a window read at most 9 minutes a probe. From this
    // version the store writes histograms up to their last non-empty bucket
    // (`postgres::stored`): rows written before keep all 40 counts, which read the same.
    r#"
    ALTER TABLE rollups DROP CONSTRAINT rollups_pkey;
    ALTER TABLE rollups ADD PRIMARY KEY (check_id, minute_ms, probe_id);

    -- Per (check, UTC 10-minute period, region), pruned with the minute rollups: the ends of
    -- a window read at most 9 minutes a probe, then whole periods.
    CREATE TABLE rollups_10min (
        check_id     TEXT NOT NULL,
        start_ms     BIGINT NOT NULL,        -- start of the UTC 10-minute period (Unix ms)
        region       TEXT NOT NULL,
        count        BIGINT NOT NULL,
        failures     BIGINT NOT NULL,
        probe_errors BIGINT NOT NULL,
        slow         BIGINT NOT NULL,
        latency      BIGINT[] NOT NULL,
        PRIMARY KEY (check_id, start_ms, region)
    ) WITH (fillfactor = 70);
    CREATE INDEX rollups_10min_by_time ON rollups_10min (start_ms);
    CREATE AGGREGATE vantage_hist_sum(BIGINT[]) (
        SFUNC = vantage_hist_add, STYPE = BIGINT[], INITCOND = '{}', PARALLEL = SAFE
    );
    INSERT INTO rollups_10min (check_id, start_ms, region, count, failures, probe_errors, slow, latency)
    SELECT check_id, minute_ms - minute_ms % 600000, region, sum(count), sum(failures),
           sum(probe_errors), sum(slow), vantage_hist_sum(latency)
    FROM rollups GROUP BY 1, 2, 3;
    "#,
];
