//! Schema migrations, applied in order inside one transaction each and recorded in
//! `schema_version`. Never edit a shipped migration: add the next one.

/// Migrations; the index plus one is the version each brings the schema to.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: probes, raw results, per-minute rollups.
    r#"
    CREATE TABLE probes (
        id           TEXT PRIMARY KEY,
        region       TEXT NOT NULL,
        labels       TEXT NOT NULL,          -- JSON object
        token_hash   BLOB NOT NULL UNIQUE,   -- SHA-256 of the bearer token
        created_ms   INTEGER NOT NULL,
        revoked_ms   INTEGER,
        last_seen_ms INTEGER
    ) STRICT;

    CREATE TABLE results (
        probe_id    TEXT NOT NULL,
        boot_id     TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        check_id    TEXT NOT NULL,
        vendor      TEXT NOT NULL,
        region      TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        received_ms INTEGER NOT NULL,
        status      TEXT NOT NULL,
        failure     TEXT,
        total_ms    REAL NOT NULL,
        body        TEXT NOT NULL,           -- the result's JSON, as the probe sent it
        PRIMARY KEY (probe_id, boot_id, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX results_by_check ON results (check_id, started_ms);
    CREATE INDEX results_by_time ON results (started_ms);

    CREATE TABLE rollups (
        check_id  TEXT NOT NULL,
        probe_id  TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        region    TEXT NOT NULL,
        count     INTEGER NOT NULL,
        failures  INTEGER NOT NULL,
        slow      INTEGER NOT NULL,
        by_kind   TEXT NOT NULL,             -- JSON object: failure label -> count
        latency   BLOB NOT NULL,             -- LATENCY_BUCKETS little-endian u32 counts
        PRIMARY KEY (check_id, probe_id, minute_ms)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rollups_by_time ON rollups (minute_ms);
    "#,
    // 2: consensus state, incidents, the alert outbox and silences.
    r#"
    CREATE TABLE check_states (
        check_id   TEXT PRIMARY KEY,
        state      TEXT NOT NULL,            -- JSON: consensus::CheckState
        updated_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE vendor_states (
        vendor     TEXT PRIMARY KEY,
        status     TEXT NOT NULL,            -- JSON: consensus::vendor::VendorStatus
        updated_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE probe_health (
        probe_id   TEXT PRIMARY KEY,
        health     TEXT NOT NULL,            -- JSON: consensus::quarantine::ProbeHealth
        updated_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE transitions (
        id       INTEGER PRIMARY KEY,
        check_id TEXT NOT NULL,
        vendor   TEXT NOT NULL,
        at_ms    INTEGER NOT NULL,
        body     TEXT NOT NULL               -- JSON: engine::CheckTransition
    ) STRICT;
    CREATE INDEX transitions_by_vendor ON transitions (vendor, at_ms);

    CREATE TABLE incidents (
        id           INTEGER PRIMARY KEY,
        subject_kind TEXT NOT NULL,          -- vendor | probe
        subject      TEXT NOT NULL,
        state        TEXT NOT NULL,
        summary      TEXT NOT NULL,
        opened_ms    INTEGER NOT NULL,
        updated_ms   INTEGER NOT NULL,
        resolved_ms  INTEGER,
        detail       TEXT NOT NULL           -- JSON: what the incident is about now
    ) STRICT;
    CREATE UNIQUE INDEX incidents_open ON incidents (subject_kind, subject) WHERE resolved_ms IS NULL;
    CREATE INDEX incidents_by_time ON incidents (opened_ms);

    CREATE TABLE incident_events (
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        seq         INTEGER NOT NULL,
        at_ms       INTEGER NOT NULL,
        kind        TEXT NOT NULL,           -- opened | changed | resolved | notified | suppressed
        state       TEXT NOT NULL,
        detail      TEXT NOT NULL,           -- JSON
        PRIMARY KEY (incident_id, seq)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE deliveries (
        incident_id  INTEGER NOT NULL REFERENCES incidents (id),
        receiver     TEXT NOT NULL,
        triggered_ms INTEGER,
        resolved_ms  INTEGER,
        last_sent_ms INTEGER,
        PRIMARY KEY (incident_id, receiver)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id  INTEGER NOT NULL REFERENCES incidents (id),
        receiver     TEXT NOT NULL,
        event        TEXT NOT NULL,          -- trigger | update | resolve | reminder
        payload      TEXT NOT NULL,          -- JSON: alert::Alert
        created_ms   INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_ms      INTEGER NOT NULL,
        delivered_ms INTEGER,
        last_error   TEXT
    ) STRICT;
    CREATE INDEX outbox_pending ON outbox (receiver, incident_id, id) WHERE delivered_ms IS NULL;

    CREATE TABLE silences (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        vendor     TEXT,
        check_id   TEXT,
        region     TEXT,
        starts_ms  INTEGER NOT NULL,
        ends_ms    INTEGER NOT NULL,
        comment    TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) STRICT;
    "#,
    // 3: SLA reports. Probe errors counted apart in the minute rollups (they are the probe's
    // fault, not the vendor's: not a valid run), backfilled from the raw results still kept;
    // hourly and daily rollups per (check, region), backfilled from the minute rollups and
    // kept by the writer in the same transaction as the results; the vendor state history,
    // seeded with the states in force now.
    r#"
    ALTER TABLE rollups ADD COLUMN probe_errors INTEGER NOT NULL DEFAULT 0;
    UPDATE rollups SET probe_errors = pe.n
    FROM (SELECT check_id, probe_id, started_ms - started_ms % 60000 AS minute_ms, COUNT(*) AS n
          FROM results WHERE status = 'probe_error' GROUP BY 1, 2, 3) AS pe
    WHERE rollups.check_id = pe.check_id AND rollups.probe_id = pe.probe_id
      AND rollups.minute_ms = pe.minute_ms;

    CREATE TABLE rollups_hourly (
        check_id     TEXT NOT NULL,
        hour_ms      INTEGER NOT NULL,       -- start of the UTC hour (Unix ms)
        region       TEXT NOT NULL,
        count        INTEGER NOT NULL,       -- runs, probe errors included
        failures     INTEGER NOT NULL,       -- status = fail
        probe_errors INTEGER NOT NULL,       -- status = probe_error
        slow         INTEGER NOT NULL,
        latency      BLOB NOT NULL,          -- LATENCY_BUCKETS little-endian u32 counts
        PRIMARY KEY (check_id, hour_ms, region)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rollups_hourly_by_time ON rollups_hourly (hour_ms);

    CREATE TABLE rollups_daily (
        check_id     TEXT NOT NULL,
        day_ms       INTEGER NOT NULL,       -- start of the UTC day (Unix ms)
        region       TEXT NOT NULL,
        count        INTEGER NOT NULL,
        failures     INTEGER NOT NULL,
        probe_errors INTEGER NOT NULL,
        slow         INTEGER NOT NULL,
        latency      BLOB NOT NULL,
        PRIMARY KEY (check_id, day_ms, region)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rollups_daily_by_time ON rollups_daily (day_ms);

    INSERT INTO rollups_hourly (check_id, hour_ms, region, count, failures, probe_errors, slow, latency)
    SELECT check_id, minute_ms - minute_ms % 3600000, region, count, failures, probe_errors, slow, latency
    FROM rollups WHERE true
    ON CONFLICT (check_id, hour_ms, region) DO UPDATE SET
        count = count + excluded.count, failures = failures + excluded.failures,
        probe_errors = probe_errors + excluded.probe_errors, slow = slow + excluded.slow,
        latency = vantage_hist_add(latency, excluded.latency);
    INSERT INTO rollups_daily (check_id, day_ms, region, count, failures, probe_errors, slow, latency)
    SELECT check_id, hour_ms - hour_ms % 86400000, region, count, failures, probe_errors, slow, latency
    FROM rollups_hourly WHERE true
    ON CONFLICT (check_id, day_ms, region) DO UPDATE SET
        count = count + excluded.count, failures = failures + excluded.failures,
        probe_errors = probe_errors + excluded.probe_errors, slow = slow + excluded.slow,
        latency = vantage_hist_add(latency, excluded.latency);

    CREATE TABLE vendor_history (
        id     INTEGER PRIMARY KEY,
        vendor TEXT NOT NULL,
        region TEXT NOT NULL,                -- '' for the global state
        state  TEXT NOT NULL,                -- consensus::vendor::VendorState label
        at_ms  INTEGER NOT NULL              -- in force from then until the next row
    ) STRICT;
    CREATE INDEX vendor_history_by_scope ON vendor_history (vendor, region, at_ms);
    INSERT INTO vendor_history (vendor, region, state, at_ms)
    SELECT vendor, '', json_extract(status, '$.global.state'), updated_ms FROM vendor_states
    WHERE json_valid(status) AND json_type(status, '$.global.state') = 'text';
    INSERT INTO vendor_history (vendor, region, state, at_ms)
    SELECT v.vendor, r.key, json_extract(r.value, '$.state'), v.updated_ms
    FROM vendor_states v,
         json_each(CASE WHEN json_valid(v.status) THEN v.status ELSE '{}' END, '$.regions') r
    WHERE json_type(r.value, '$.state') = 'text';
    "#,
    // 4: flapping. An incident whose subject has cleared waits out the flap window before it
    // resolves (`clear_since_ms`); failing again within it is a flap of the same incident
    // (`flaps`). `opened_state` keeps what the first page said, so that receivers that key
    // on it (Alertmanager's labels) see one alert for the whole episode.
    r#"
    ALTER TABLE incidents ADD COLUMN opened_state TEXT NOT NULL DEFAULT '';
    ALTER TABLE incidents ADD COLUMN clear_since_ms INTEGER;
    ALTER TABLE incidents ADD COLUMN flaps INTEGER NOT NULL DEFAULT 0;
    UPDATE incidents SET opened_state = COALESCE(
        (SELECT e.state FROM incident_events e WHERE e.incident_id = incidents.id ORDER BY e.seq LIMIT 1),
        state);
    "#,
    // 5: dead letters. An alert that failed every attempt a receiver allows is given up:
    // `dead_ms` says when, and it no longer blocks the alerts queued after it.
    r#"
    ALTER TABLE outbox ADD COLUMN dead_ms INTEGER;
    "#,
    // 6: raw results by vendor and by region, for the API's filters (a full scan otherwise).
    r#"
    CREATE INDEX results_by_vendor ON results (vendor, started_ms);
    CREATE INDEX results_by_region ON results (region, started_ms);
    "#,
    // 7: several coordinators on one store. Evaluation leases per partition (16, as
    // `store::lease::PARTS`) with a fencing epoch, the coordinators' heartbeats, the spans in
    // which each partition was evaluated (coverage, for SLA reports), a version on incidents
    // for compare-and-set, and a claim on outbox rows so that one coordinator sends each.
    r#"
    CREATE TABLE coordinators (
        node         TEXT PRIMARY KEY,
        address      TEXT NOT NULL,
        version      TEXT NOT NULL,
        started_ms   INTEGER NOT NULL,
        heartbeat_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE leases (
        part        INTEGER PRIMARY KEY,
        holder      TEXT,
        epoch       INTEGER NOT NULL DEFAULT 0,
        expires_ms  INTEGER NOT NULL DEFAULT 0,
        acquired_ms INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n < 15)
    INSERT INTO leases (part) SELECT n FROM p;

    CREATE TABLE coverage (
        part    INTEGER NOT NULL,
        epoch   INTEGER NOT NULL,
        node    TEXT NOT NULL,
        from_ms INTEGER NOT NULL,
        to_ms   INTEGER NOT NULL,
        PRIMARY KEY (part, epoch)
    ) STRICT;
    CREATE INDEX coverage_by_time ON coverage (part, to_ms);
    -- Before this version nothing recorded coverage: reports over that time read as before.
    INSERT INTO coverage (part, epoch, node, from_ms, to_ms)
    SELECT part, 0, '(before coverage was recorded)', 0, CAST(strftime('%s', 'now') AS INTEGER) * 1000
    FROM leases;

    ALTER TABLE incidents ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN claim_until_ms INTEGER;
    "#,
    // 8: SLA reports read less. Minute rollups keyed (check, minute, probe), so that a window
    // of one check is one range of the key whatever its probes (it was one range per probe,
    // and the ragged ends of a cold report waited on each); histograms in the compact form
    // (`report::encode_buckets`), which makes the rollup tables a third of their size; and
    // a 10-minute tier, so that the ends of a window read at most 9 minutes a probe.
    r#"
    CREATE TABLE rollups_by_check_minute (
        check_id     TEXT NOT NULL,
        probe_id     TEXT NOT NULL,
        minute_ms    INTEGER NOT NULL,
        region       TEXT NOT NULL,
        count        INTEGER NOT NULL,
        failures     INTEGER NOT NULL,
        slow         INTEGER NOT NULL,
        by_kind      TEXT NOT NULL,          -- JSON object: failure label -> count
        latency      BLOB NOT NULL,          -- report::encode_buckets
        probe_errors INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (check_id, minute_ms, probe_id)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO rollups_by_check_minute
    SELECT check_id, probe_id, minute_ms, region, count, failures, slow, by_kind,
           vantage_hist_add(latency, X''), probe_errors
    FROM rollups ORDER BY check_id, minute_ms, probe_id;
    DROP TABLE rollups;
    ALTER TABLE rollups_by_check_minute RENAME TO rollups;
    CREATE INDEX rollups_by_time ON rollups (minute_ms);
    UPDATE rollups_hourly SET latency = vantage_hist_add(latency, X'');
    UPDATE rollups_daily SET latency = vantage_hist_add(latency, X'');

    -- Per (check, UTC 10-minute period, region), pruned with the minute rollups: the ends of
    -- a window read at most 9 minutes a probe, then whole periods.
    CREATE TABLE rollups_10min (
        check_id     TEXT NOT NULL,
        start_ms     INTEGER NOT NULL,       -- start of the UTC 10-minute period (Unix ms)
        region       TEXT NOT NULL,
        count        INTEGER NOT NULL,
        failures     INTEGER NOT NULL,
        probe_errors INTEGER NOT NULL,
        slow         INTEGER NOT NULL,
        latency      BLOB NOT NULL,
        PRIMARY KEY (check_id, start_ms, region)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX rollups_10min_by_time ON rollups_10min (start_ms);
    INSERT INTO rollups_10min (check_id, start_ms, region, count, failures, probe_errors, slow, latency)
    SELECT check_id, minute_ms - minute_ms % 600000, region, count, failures, probe_errors, slow, latency
    FROM rollups WHERE true
    ON CONFLICT (check_id, start_ms, region) DO UPDATE SET
        count = count + excluded.count, failures = failures + excluded.failures,
        probe_errors = probe_errors + excluded.probe_errors, slow = slow + excluded.slow,
        latency = vantage_hist_add(latency, excluded.latency);
    "#,
    // 9: on-demand regression runs (`POST /api/v1/runs`) and their results, apart from the
    // scheduled results: never in consensus, the rollups or SLA reports. Lists are JSON text.
    r#"
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        vendor      TEXT NOT NULL,
        label       TEXT,
        suite       TEXT,
        checks      TEXT NOT NULL,
        regions     TEXT NOT NULL,
        probes      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        deadline_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX runs_by_vendor ON runs (vendor, id);

    CREATE TABLE run_results (
        run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        check_id    TEXT NOT NULL,
        probe_id    TEXT NOT NULL,
        region      TEXT NOT NULL,
        received_ms INTEGER NOT NULL,
        body        TEXT NOT NULL,
        PRIMARY KEY (run_id, check_id, probe_id)
    ) STRICT, WITHOUT ROWID;
    "#,
];
