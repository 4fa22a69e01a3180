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
