//! Property: over random sequences of ingests, promotions and retractions, no public response ever contains a
//! run that is not currently promoted, and every promoted run is listed.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone)]
enum Op {
    Ingest(usize, Kind),
    Promote(usize),
    Retract(usize),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Good),
        1 => Just(Kind::BadCount),
        1 => Just(Kind::BadQuality),
        1 => Just(Kind::NoDigest),
        1 => Just(Kind::PortingTrack),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6usize, kind()).prop_map(|(i, k)| Op::Ingest(i, k)),
        (0..6usize).prop_map(Op::Promote),
        (0..6usize).prop_map(Op::Retract),
    ]
}

/// Public routes a visitor can read.
const PUBLIC_GETS: [&str; 5] = [
    "/api/v1/claims",
    "/api/v1/sizing",
    "/api/v1/models",
    "/api/v1/gpus",
    "/api/v1/claims?family=E4B",
];

#[test]
fn public_routes_show_exactly_the_promoted_runs() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(spawn());
    // State across cases: run id -> (kind, currently promoted). Ids are unique per case and fixed-width so a
    // substring search cannot confuse one with another.
    let known_cell: RefCell<HashMap<String, (Kind, bool)>> = RefCell::new(HashMap::new());
    let case_counter = Cell::new(0usize);
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..14), |ops| {
        case_counter.set(case_counter.get() + 1);
        let case = case_counter.get();
        let mut known = known_cell.borrow_mut();
        rt.block_on(async {
            for op in ops {
                let id = |i: usize| format!("prop-c{case:04}-r{i:02}-end");
                match op {
                    Op::Ingest(i, k) => {
                        let run_id = id(i);
                        let kind = known.get(&run_id).map(|(k, _)| *k).unwrap_or(k);
                        let status = app.ingest(record_of(kind, &run_id)).await.status().as_u16();
                        prop_assert!(status == 201 || status == 200, "ingest {run_id}: {status}");
                        known.entry(run_id).or_insert((kind, false));
                    }
                    Op::Promote(i) => {
                        let run_id = id(i);
                        let status = app.promote(&run_id).await.status().as_u16();
                        match known.get_mut(&run_id) {
                            None => prop_assert_eq!(status, 404),
                            Some((_, true)) => prop_assert_eq!(status, 409),
                            Some((Kind::Good, promoted)) => {
                                prop_assert_eq!(status, 200);
                                *promoted = true;
                            }
                            Some(_) => prop_assert_eq!(status, 409),
                        }
                    }
                    Op::Retract(i) => {
                        let run_id = id(i);
                        let status = app.retract(&run_id).await.status().as_u16();
                        match known.get_mut(&run_id) {
                            None => prop_assert_eq!(status, 404),
                            Some((_, promoted @ true)) => {
                                prop_assert_eq!(status, 200);
                                *promoted = false;
                            }
                            Some(_) => prop_assert_eq!(status, 409),
                        }
                    }
                }
                // After every step: the public claims are exactly the promoted runs, and no other run id appears
                // anywhere in any public response.
                let promoted: BTreeSet<&str> = known
                    .iter()
                    .filter(|(_, (_, p))| *p)
                    .map(|(id, _)| id.as_str())
                    .collect();
                let (_, claims) = json(app.get("/api/v1/claims").await).await;
                let listed: BTreeSet<&str> = claims["claims"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["run_id"].as_str().unwrap())
                    .collect();
                prop_assert_eq!(&listed, &promoted);
                // A run's signed record is served exactly while it is promoted.
                for (run_id, (_, is_promoted)) in known.iter() {
                    let status = app
                        .get(&format!("/api/v1/claims/{run_id}/record"))
                        .await
                        .status()
                        .as_u16();
                    prop_assert_eq!(
                        status,
                        if *is_promoted { 200 } else { 404 },
                        "record of {}",
                        run_id
                    );
                }
                for path in PUBLIC_GETS {
                    let body = app.get(path).await.text().await.unwrap();
                    for (run_id, (_, is_promoted)) in known.iter() {
                        if !is_promoted {
                            prop_assert!(
                                !body.contains(run_id.as_str()),
                                "{} shows unpromoted {}",
                                path,
                                run_id
                            );
                        }
                    }
                }
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let known = known_cell.into_inner();
    // The internal view still holds every run, with claim states matching the model.
    let runs = rt.block_on(async {
        json(
            app.as_operator(Method::GET, "/api/internal/runs", None)
                .await,
        )
        .await
        .1
    });
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), known.len());
    for r in runs {
        let (_, promoted) = known[r["run_id"].as_str().unwrap()];
        assert_eq!(r["claim_status"] == "promoted", promoted, "{}", r["run_id"]);
    }
    assert!(
        known.values().any(|(_, p)| *p) || known.len() < 3,
        "the sequences exercised promotion"
    );
}
