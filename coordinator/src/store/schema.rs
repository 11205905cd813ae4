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
];
