//! Schema migrations for PostgreSQL, applied in order inside one transaction each and
//! recorded in `schema_version`, as on SQLite. Never edit a shipped migration: add the next
//! one. Version 1 is SQLite's versions 1 to 6 at once, with PostgreSQL's types: the two
//! stores hold the same tables and columns, so `migrate --to` copies one into the other.
//!
//! Two differences, both so that concurrent writers need no read-modify-write: a rollup's
//! latency histogram is a column a bucket (a `BIGINT[]` before version 5) and its failures by
//! kind a `JSONB` object, each added in the same `INSERT … ON CONFLICT DO UPDATE`.

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
    // 5: histograms as one nullable INTEGER column a bucket, b0 to b39 (`postgres::Buckets`):
    // an empty bucket is a NULL bit, rows are about 40% of their size as arrays (so a cold
    // report reads fewer pages), and a report sums plain columns instead of array elements
    // (half the time). Each tier's table is rebuilt in key order; counts above 2^31 - 1, which
    // no bucket of one row reaches, saturate.
    r#"
    DO $$
    DECLARE
        cols TEXT := (SELECT string_agg(format('b%s INTEGER', i), ', ' ORDER BY i)
                      FROM generate_series(0, 39) AS i);
        vals TEXT := (SELECT string_agg(
                          format('NULLIF(LEAST(COALESCE(latency[%s], 0), 2147483647), 0)::int4', i + 1), ', '
                          ORDER BY i)
                      FROM generate_series(0, 39) AS i);
        t RECORD;
    BEGIN
        FOR t IN SELECT * FROM (VALUES
            ('rollups',
             'check_id TEXT NOT NULL, probe_id TEXT NOT NULL, minute_ms BIGINT NOT NULL,
              region TEXT NOT NULL, count BIGINT NOT NULL, failures BIGINT NOT NULL,
              slow BIGINT NOT NULL, by_kind JSONB NOT NULL, probe_errors BIGINT NOT NULL DEFAULT 0',
             'check_id, probe_id, minute_ms, region, count, failures, slow, by_kind, probe_errors',
             'check_id, minute_ms, probe_id', 'minute_ms'),
            ('rollups_10min',
             'check_id TEXT NOT NULL, start_ms BIGINT NOT NULL, region TEXT NOT NULL,
              count BIGINT NOT NULL, failures BIGINT NOT NULL, probe_errors BIGINT NOT NULL,
              slow BIGINT NOT NULL',
             'check_id, start_ms, region, count, failures, probe_errors, slow',
             'check_id, start_ms, region', 'start_ms'),
            ('rollups_hourly',
             'check_id TEXT NOT NULL, hour_ms BIGINT NOT NULL, region TEXT NOT NULL,
              count BIGINT NOT NULL, failures BIGINT NOT NULL, probe_errors BIGINT NOT NULL,
              slow BIGINT NOT NULL',
             'check_id, hour_ms, region, count, failures, probe_errors, slow',
             'check_id, hour_ms, region', 'hour_ms'),
            ('rollups_daily',
             'check_id TEXT NOT NULL, day_ms BIGINT NOT NULL, region TEXT NOT NULL,
              count BIGINT NOT NULL, failures BIGINT NOT NULL, probe_errors BIGINT NOT NULL,
              slow BIGINT NOT NULL',
             'check_id, day_ms, region, count, failures, probe_errors, slow',
             'check_id, day_ms, region', 'day_ms')
        ) AS v(name, defs, copied, pkey, unit) LOOP
            EXECUTE format('CREATE TABLE %I (%s, %s, PRIMARY KEY (%s)) WITH (fillfactor = 70)',
                           t.name || '_v5', t.defs, cols, t.pkey);
            EXECUTE format('INSERT INTO %I SELECT %s, %s FROM %I ORDER BY %s',
                           t.name || '_v5', t.copied, vals, t.name, t.pkey);
            EXECUTE format('DROP TABLE %I', t.name);
            EXECUTE format('ALTER TABLE %I RENAME TO %I', t.name || '_v5', t.name);
            EXECUTE format('ALTER INDEX %I RENAME TO %I', t.name || '_v5_pkey', t.name || '_pkey');
            EXECUTE format('CREATE INDEX %I ON %I (%s)', t.name || '_by_time', t.name, t.unit);
        END LOOP;
    END
    $$;
    DROP AGGREGATE vantage_hist_sum(BIGINT[]);
    DROP FUNCTION vantage_hist_add(BIGINT[], BIGINT[]);
    "#,
    // 6: on-demand regression runs and their results, as SQLite's 9.
    r#"
    CREATE TABLE runs (
        id          BIGSERIAL PRIMARY KEY,
        vendor      TEXT NOT NULL,
        label       TEXT,
        suite       TEXT,
        checks      TEXT NOT NULL,
        regions     TEXT NOT NULL,
        probes      TEXT NOT NULL,
        created_ms  BIGINT NOT NULL,
        deadline_ms BIGINT NOT NULL
    );
    CREATE INDEX runs_by_vendor ON runs (vendor, id);

    CREATE TABLE run_results (
        run_id      BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        check_id    TEXT NOT NULL,
        probe_id    TEXT NOT NULL,
        region      TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        body        TEXT NOT NULL,
        PRIMARY KEY (run_id, check_id, probe_id)
    );
    "#,
];

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::store::report::{ReportStore as _, Tier};
    use crate::store::{LATENCY_BUCKETS, PostgresStore, Store as _};

    /// A UTC day's start.
    const T0: i64 = 1_796_515_200_000;

    /// A histogram with `(bucket, count)`s, the rest empty.
    fn hist(counts: &[(usize, u64)]) -> Vec<u64> {
        let mut h = vec![0; LATENCY_BUCKETS];
        for &(i, n) in counts {
            h[i] = n;
        }
        h
    }

    #[test]
    fn migration_5_moves_histograms_from_arrays_to_a_column_a_bucket() {
        let pg = vantage_e2e::postgres::Postgres::start();
        let url = pg.create_database("m5");
        // A store at version 4, its rollups written as arrays: trimmed ones, as version 4
        // wrote them, and the full 40 counts of earlier versions, one past `i32::MAX`.
        let mut v4 = MIGRATIONS[..4].join(";\n");
        v4.push_str(&format!(
            ";
            CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
            INSERT INTO schema_version VALUES (4);
            INSERT INTO rollups VALUES
                ('c1', 'p1', {T0}, 'a', 3, 1, 0, '{{\"timeout\": 1}}', '{{0,2,1}}', 0),
                ('c1', 'p2', {T0}, 'a', 7, 0, 1, '{{}}', ARRAY[3000000000]::int8[] || array_fill(0::int8, ARRAY[38]) || ARRAY[5::int8], 2);
            INSERT INTO rollups_10min VALUES ('c1', {T0}, 'a', 11, 1, 0, 0, '{{0,0,0,11}}');
            INSERT INTO rollups_hourly VALUES ('c1', {T0}, 'a', 13, 2, 1, 0, '{{13}}');
            INSERT INTO rollups_daily VALUES ('c1', {T0}, 'b', 17, 0, 0, 3, '{{0,17}}');"
        ));
        pg.psql("m5", &v4).expect("a store at version 4");

        let s = PostgresStore::open(&url, None).expect("open, migrating to 5");
        assert_eq!(
            pg.psql("m5", "SELECT version FROM schema_version"),
            Ok(MIGRATIONS.len().to_string())
        );
        let minutes = s.rollups("c1", T0, T0 + 60_000).expect("rollups");
        let got: Vec<_> = minutes
            .iter()
            .map(|r| {
                (
                    r.probe_id.as_str(),
                    [r.count, r.failures, r.slow, r.probe_errors],
                    r.latency_buckets.as_slice(),
                )
            })
            .collect();
        let (p1, p2) = (
            hist(&[(1, 2), (2, 1)]),
            hist(&[(0, i32::MAX as u64), (39, 5)]),
        );
        assert_eq!(
            got,
            [
                ("p1", [3, 1, 0, 0], p1.as_slice()),
                ("p2", [7, 0, 1, 2], p2.as_slice())
            ]
        );
        assert_eq!(minutes[0].failures_by_kind.get("timeout"), Some(&1));
        // Each tier alone: a minute, a 10-minute period, an hour and a day.
        for (tier, region, runs, latency) in [
            (
                Tier::Minute,
                "a",
                10,
                hist(&[(0, i32::MAX as u64), (1, 2), (2, 1), (39, 5)]),
            ),
            (Tier::TenMinutes, "a", 11, hist(&[(3, 11)])),
            (Tier::Hour, "a", 13, hist(&[(0, 13)])),
            (Tier::Day, "b", 17, hist(&[(1, 17)])),
        ] {
            let totals = s
                .rollup_totals(&["c1".to_owned()], T0, T0 + tier.ms())
                .expect("totals");
            assert_eq!(totals.len(), 1, "{tier:?}: {totals:?}");
            assert_eq!(
                (
                    totals[0].region.as_str(),
                    totals[0].totals.runs,
                    totals[0].totals.latency.to_vec()
                ),
                (region, runs, latency),
                "{tier:?}"
            );
        }
        // The arrays and their functions are gone; the buckets are plain columns.
        assert_eq!(
            pg.psql(
                "m5",
                "SELECT count(*) FROM information_schema.columns
                 WHERE column_name = 'latency' OR (column_name ~ '^b[0-9]+$' AND data_type = 'integer')"
            ),
            Ok((4 * LATENCY_BUCKETS).to_string())
        );
        assert_eq!(
            pg.psql(
                "m5",
                "SELECT count(*) FROM pg_proc WHERE proname LIKE 'vantage_hist%'"
            ),
            Ok("0".to_owned())
        );
        assert_eq!(
            pg.psql(
                "m5",
                "SELECT b0, b39, b1 IS NULL FROM rollups WHERE probe_id = 'p2'"
            ),
            Ok(format!("{}|5|t", i32::MAX))
        );

        // A commit adds to a converted row bucket by bucket: an empty bucket stays NULL, and
        // a count past `i32::MAX` saturates rather than failing the commit.
        let mut add = super::super::CoarseColumns::default();
        add.check.push("c1");
        add.start.push(T0);
        add.region.push("a");
        add.count.push(2);
        add.failures.push(0);
        add.probe_errors.push(0);
        add.slow.push(0);
        let mut h = [0; LATENCY_BUCKETS];
        (h[0], h[5]) = (2_000_000_000, 1);
        add.latency.push(&h);
        s.run(async |c| {
            let upsert = c
                .prepare(&super::super::UPSERT_COARSE[Tier::Hour as usize])
                .await?;
            for _ in 0..2 {
                c.execute(&upsert, &add.args()).await?;
            }
            Ok(())
        })
        .expect("two commits");
        assert_eq!(
            pg.psql(
                "m5",
                "SELECT count, b0, b5, b1 IS NULL FROM rollups_hourly WHERE check_id = 'c1'"
            ),
            Ok(format!("17|{}|2|t", i32::MAX))
        );
    }
}
