//! The store behind the routes: backups.

use crate::common::*;

#[tokio::test]
async fn backup_is_a_consistent_copy() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("b")).await.status(), 201);
    let target = app._dir.0.join("backup.db");
    app.state.db.backup(&target).await.unwrap();
    assert!(
        app.state.db.backup(&target).await.is_err(),
        "never overwrites"
    );
    let copy = vkae_evidence::db::Db::open(target.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(copy.integrity_check().await.unwrap(), "ok");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs")
        .fetch_one(&copy.reader)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
