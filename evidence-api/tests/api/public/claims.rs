//! `GET /api/v1/claims` and `/api/v1/claims/{run_id}/record`: a promoted claim serves its signed record; the public code reads only the `public_claims` view.

use crate::common::*;

/// A promoted claim names the signed record behind it and the lane key that signed it; the record is served
/// byte for byte as stored and verifies offline under that key. Unknown, unpromoted and retracted runs answer
/// the same 404, so the route tells nothing about runs that are not public.
#[tokio::test]
async fn a_promoted_claim_serves_its_signed_record_which_verifies_offline() {
    let app = spawn().await;
    let path = "/api/v1/claims/run-v/record";
    assert_eq!(app.ingest(record("run-v")).await.status(), 201);
    for p in [path, "/api/v1/claims/no-such-run/record"] {
        let (status, body) = json(app.get(p).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("claim_not_found")),
            "{p}: {body}"
        );
    }

    assert_eq!(app.promote("run-v").await.status(), 200);
    let (_, claims) = json(app.get("/api/v1/claims").await).await;
    let provenance = &claims["claims"][0]["provenance"];
    assert_eq!(provenance["record"], path, "{provenance}");
    assert_eq!(provenance["lane_key"], LANE_KEY);
    let public = provenance["lane_public_key"].as_str().unwrap();
    assert_eq!(
        public,
        vkae_record::encode_verifying_key(&app.key.verifying_key())
    );

    let r = app.get(path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        provenance["record_sha256"].as_str().unwrap(),
        vkae_evidence::auth::sha256_hex(&bytes)
    );
    let served = vkae_record::RunRecord::parse(&bytes).unwrap();
    let key = vkae_record::decode_verifying_key(public).unwrap();
    served.verify(&key).unwrap();
    assert_eq!(served.run_id, "run-v");
    assert_eq!(served.paths, record("run-v").paths);
    // The check can fail: a served record altered by one figure no longer verifies.
    let mut altered = served.clone();
    altered.paths[0].tokens_per_s[0] += 1.0;
    assert!(altered.verify(&key).is_err());

    // No query parameters; and once retracted, the record is gone with the claim.
    assert_eq!(app.get(&format!("{path}?full=1")).await.status(), 400);
    assert_eq!(app.retract("run-v").await.status(), 200);
    let (status, body) = json(app.get(path).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("claim_not_found"))
    );
}

#[tokio::test]
async fn append_only_in_sql_and_public_code_reads_only_the_view() {
    let app = spawn().await;
    assert_eq!(app.ingest(record("a")).await.status(), 201);
    for sql in [
        "UPDATE audit_log SET actor = 'x'",
        "DELETE FROM audit_log",
        "UPDATE runs SET record_json = '{}'",
        "DELETE FROM runs",
        "UPDATE lane_verdicts SET passed = 1",
        "DELETE FROM lane_verdicts",
    ] {
        let e = sqlx::query(sql)
            .execute(&app.state.db.writer)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let (wal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!((wal.as_str(), sync, fk), ("wal", 2, 1));
    // The public module's SQL names only the public_claims view.
    let source = include_str!("../../../src/public.rs");
    let mut tables = Vec::new();
    for kw in ["FROM ", "JOIN "] {
        for (i, _) in source.match_indices(kw) {
            let name: String = source[i + kw.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            tables.push(name);
        }
    }
    assert!(!tables.is_empty());
    assert!(tables.iter().all(|t| t == "public_claims"), "{tables:?}");
}
