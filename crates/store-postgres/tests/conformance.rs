//! The storage conformance suite on PostgreSQL, each test in a schema of its own. Needs
//! `LONGRUN_TEST_DATABASE_URL`; without it every test prints a notice and passes as skipped.

use longrun_store_postgres::PostgresStore;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Drops the test's schema when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop cannot await: a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

async fn fresh() -> Option<(PostgresStore, Schema)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Ok(url) = std::env::var("LONGRUN_TEST_DATABASE_URL") else {
        eprintln!("skipped: set LONGRUN_TEST_DATABASE_URL to run the PostgreSQL conformance suite");
        return None;
    };
    let name = format!(
        "longrun_test_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap();
    let mut config: tokio_postgres::Config = url.parse().unwrap();
    config.options(format!("-c search_path={name}"));
    let store = PostgresStore::connect_with(config).await.unwrap();
    Some((store, Schema { url, name }))
}

longrun_store::conformance_suite!(fresh());
