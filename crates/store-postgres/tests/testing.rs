//! The test schema helper itself: dropping a schema never hangs, even on a connection
//! left inside a transaction on a runtime that can no longer drive it (a panicking test's
//! servers, while its unwinding drops the schema). Needs `LONGRUN_TEST_DATABASE_URL`.

use longrun_store_postgres::testing::{DATABASE_URL, Schema};
use tokio_postgres::NoTls;

#[test]
fn a_schema_is_dropped_though_its_connection_holds_a_lock() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(schema) = Schema::create("stuck").await else {
            return;
        };
        let (client, connection) = schema.config().connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE t (x INT); BEGIN; LOCK TABLE t")
            .await
            .unwrap();
        let name = schema.name().to_string();
        // Blocks this runtime's only thread until the schema is gone: the connection
        // holding the lock is not driven meanwhile.
        drop(schema);
        let url = std::env::var(DATABASE_URL).unwrap();
        let (admin, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "schema {name} was not dropped");
        assert!(
            client.is_closed(),
            "the connection in the schema was not ended"
        );
    });
}
