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
];
