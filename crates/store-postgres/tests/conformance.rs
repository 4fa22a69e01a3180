//! The storage conformance suite on PostgreSQL, each test in a schema of its own
//! (`testing::Schema`, dropped when the test ends). Needs `LONGRUN_TEST_DATABASE_URL`; without it every
//! test prints a notice and passes as skipped.

use longrun_store_postgres::PostgresStore;
use longrun_store_postgres::testing::Schema;

async fn fresh() -> Option<(PostgresStore, Schema)> {
    let schema = Schema::create("conformance").await?;
    let store = PostgresStore::connect_with(schema.config()).await.unwrap();
    Some((store, schema))
}

longrun_store::conformance_suite!(fresh());

/// A database that refuses more connections (here the role's connection limit; a full
/// `max_connections` gives the same SQLSTATE 53300) makes calls wait for one of the store's
/// own connections instead of failing: 32 reads at once through a role allowed 3
/// connections (the store's first, its LISTEN connection and one more) all succeed.
#[tokio::test]
async fn calls_wait_for_a_connection_when_the_database_has_too_many() {
    use longrun_store::Operations;
    use longrun_types::{Name, Project};
    let Some(schema) = Schema::create("refused").await else {
        return;
    };
    let role = format!("{}_role", schema.name());
    schema
        .admin()
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN CONNECTION LIMIT 3; \
             GRANT ALL ON SCHEMA {schema} TO {role}",
            schema = schema.name()
        ))
        .await
        .unwrap();
    let mut config = schema.config();
    config.user(&role);
    let store = PostgresStore::connect_with(config).await.unwrap();
    let name = Name::new(&Project::parse("p").unwrap(), "missing").unwrap();
    let reads = (0..32).map(|_| store.get(&name));
    for read in futures_util::future::join_all(reads).await {
        assert_eq!(read.unwrap(), None);
    }
    drop(store);
    // The store's connections close as its tasks end; the role goes once they have.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let drop_role = format!("DROP OWNED BY {role}; DROP ROLE {role}");
    while let Err(e) = schema.admin().batch_execute(&drop_role).await {
        assert!(
            std::time::Instant::now() < deadline,
            "cannot drop {role}: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
