//! TLS to PostgreSQL: `sslmode=require` or `verify-full`, with `sslrootcert`, against a real
//! server with TLS on (a certificate from a test CA), and the errors an operator meets.

use vantage_coordinator::store::migrate::reach;
use vantage_coordinator::store::{PostgresStore, Store as _, StoreError};
use vantage_e2e::pki::TestCa;
use vantage_e2e::postgres::Postgres;

/// Sessions of this coordinator's pool on `db` that the server says are encrypted, and all.
fn sessions(pg: &Postgres, db: &str) -> (u32, u32) {
    let count = |only_tls: bool| {
        pg.psql(
            db,
            &format!(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                 WHERE a.application_name = 'vantage-coordinator' AND a.datname = '{db}'{}",
                if only_tls { " AND s.ssl" } else { "" }
            ),
        )
        .expect("psql")
        .parse()
        .expect("a count")
    };
    (count(true), count(false))
}

fn open_err(url: &str) -> String {
    match PostgresStore::open(url, None) {
        Ok(_) => panic!("{url}: opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_store_speaks_tls_to_postgres_and_verifies_the_server() {
    let ca = TestCa::new();
    let mut pg = Postgres::start();
    pg.enable_tls(&ca.server("postgres", &["localhost", "127.0.0.1"]));
    let url = pg.create_database("tls");
    let root = ca.ca_file();

    // verify-full (libpq's spelling) with the CA: every session of the pool is encrypted.
    let store = PostgresStore::open(
        &format!("{url}?sslmode=verify-full&sslrootcert={}", root.display()),
        None,
    )
    .expect("open over TLS");
    assert!(store.list_probes().expect("a query over TLS").is_empty());
    let (tls, all) = sessions(&pg, "tls");
    assert!(all >= 1 && tls == all, "{tls} of {all} sessions encrypted");
    drop(store);

    // `require` is verified too, and the key=value form takes the same settings.
    let kv = format!(
        "host=127.0.0.1 port={} user=vantage dbname=tls sslmode=require sslrootcert='{}'",
        pg.port(),
        root.display()
    );
    let store = PostgresStore::open(&kv, None).expect("open over TLS, key=value");
    store.list_probes().expect("a query");
    drop(store);
    assert_eq!(
        reach(
            &format!("{url}?sslmode=require&sslrootcert={}", root.display()),
            None
        )
        .expect("migrate reaches the target over TLS"),
        format!("postgresql://vantage@127.0.0.1:{}/tls", pg.port())
    );

    // Without the CA, the system's roots do not vouch for the server: refused, and said why.
    let err = open_err(&format!("{url}?sslmode=require"));
    assert!(err.contains("UnknownIssuer"), "{err}");
    // A certificate for another name.
    let mut other = Postgres::start();
    other.enable_tls(&ca.server("elsewhere", &["db.example"]));
    let other_url = other.create_database("tls");
    let err = open_err(&format!(
        "{other_url}?sslmode=verify-full&sslrootcert={}",
        root.display()
    ));
    assert!(err.contains("not valid for name"), "{err}");
    // A server without TLS.
    let plain = Postgres::start();
    let plain_url = plain.create_database("plain");
    let err = open_err(&format!(
        "{plain_url}?sslmode=require&sslrootcert={}",
        root.display()
    ));
    assert!(err.contains("TLS"), "{err}");
    // The default (prefer) connects without TLS, as before.
    let store = PostgresStore::open(&plain_url, None).expect("open without TLS");
    store.list_probes().expect("a query");
    assert_eq!(sessions(&plain, "plain").0, 0);

    // Settings that cannot work are refused before connecting, naming the file.
    let missing = root.with_file_name("no-such-ca.pem");
    match PostgresStore::open(
        &format!("{url}?sslmode=require&sslrootcert={}", missing.display()),
        None,
    ) {
        Err(StoreError::Config(why)) => assert!(why.contains("no-such-ca.pem"), "{why}"),
        other => panic!("a missing CA file: {:?}", other.err()),
    }
    match PostgresStore::open(&format!("{url}?sslrootcert={}", root.display()), None) {
        Err(StoreError::Config(why)) => assert!(why.contains("sslmode=require"), "{why}"),
        other => panic!("sslrootcert without sslmode: {:?}", other.err()),
    }
}
