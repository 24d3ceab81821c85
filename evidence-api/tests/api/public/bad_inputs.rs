//! Bad queries and bodies on the public routes (claims, models, gpus, sizing, preview): status, code and field.

use crate::common::*;

#[tokio::test]
async fn public_bad_inputs() {
    let app = spawn().await;
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (
            "/api/v1/claims?family=7B",
            400,
            "invalid_query",
            Some("family"),
        ),
        (
            "/api/v1/claims?gpu=rtx4090",
            400,
            "invalid_query",
            Some("gpu"),
        ),
        (
            "/api/v1/claims?level=best",
            400,
            "invalid_query",
            Some("level"),
        ),
        (
            "/api/v1/claims?sort=fast",
            400,
            "invalid_query",
            Some("sort"),
        ),
        ("/api/v1/models?x=1", 400, "invalid_query", Some("x")),
        ("/api/v1/gpus?x=1", 400, "invalid_query", Some("x")),
        (
            "/api/v1/sizing?family=nope",
            400,
            "invalid_query",
            Some("family"),
        ),
        ("/api/v1/sizing?fam=E4B", 400, "invalid_query", Some("fam")),
        ("/api/v1/nothing", 404, "not_found", None),
        ("/api/internal/nothing", 404, "not_found", None),
    ];
    for (path, status, code, field) in cases {
        let (got, body) = json(app.get(path).await).await;
        assert_eq!(got, *status, "{path}: {body}");
        assert_eq!(body["error"]["code"], *code, "{path}: {body}");
        assert_eq!(body["error"]["field"].as_str(), *field, "{path}: {body}");
    }
    // Wrong method: JSON 405.
    let r = app
        .client
        .delete(app.url("/api/v1/claims"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // The catalog routes answer with content.
    let (_, models) = json(app.get("/api/v1/models").await).await;
    assert_eq!(models["repo_count"], 15);
    assert_eq!(models["families"].as_array().unwrap().len(), 5);
    assert_eq!(
        models["adjacent"]["repos"][0],
        "google/diffusiongemma-26B-A4B-it"
    );
    assert_eq!(models["families"][1]["profile"]["status"], "claim-ready");
    assert!(models["excluded"].as_array().unwrap().len() >= 3);
    let (_, gpus) = json(app.get("/api/v1/gpus").await).await;
    let ids: Vec<&str> = gpus["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l4", "l40s", "a100-80gb", "h100-sxm", "h200"]);
    let (status, health) = json(app.get("/healthz").await).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}
