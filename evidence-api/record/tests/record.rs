//! The record's contract: the sample parses and round-trips, the schema and the Rust type agree on required and
//! known members, strict parsing names the failing field, signatures cover every member.

use serde_json::{json, Value};
use vkae_record::*;

fn sample() -> Value {
    serde_json::from_str(SAMPLE_RECORD).unwrap()
}

fn parse_value(v: &Value) -> Result<RunRecord, RecordError> {
    RunRecord::parse(&serde_json::to_vec(v).unwrap())
}

#[test]
fn sample_parses_and_round_trips() {
    let record = RunRecord::parse(SAMPLE_RECORD.as_bytes()).unwrap();
    assert_eq!(record.model.family, "E4B");
    assert_eq!(record.paths.len(), 2);
    assert_eq!(record.unavailable_paths[0].role, Role::Peer);
    assert_eq!(
        record.to_value(),
        sample(),
        "serialising the parsed sample gives the sample back"
    );
    let again = RunRecord::parse(&record.to_json_bytes()).unwrap();
    assert_eq!(again, record);
}

/// Every member the schema lists as required is required by the type, and the field named in the error is it.
#[test]
fn schema_required_members_match_the_type() {
    let schema: Value = serde_json::from_str(JSON_SCHEMA).unwrap();
    let base = sample();
    let mut checked = 0;
    let mut visit = |pointer: &str, schema_node: &Value| {
        let required = schema_node["required"].as_array().unwrap();
        for name in required {
            let name = name.as_str().unwrap();
            let mut doc = base.clone();
            let parent = if pointer.is_empty() {
                &mut doc
            } else {
                doc.pointer_mut(pointer).unwrap()
            };
            parent
                .as_object_mut()
                .unwrap()
                .remove(name)
                .expect("sample has every required member");
            let err = parse_value(&doc).unwrap_err();
            let dotted = if pointer.is_empty() {
                name.to_string()
            } else {
                format!(
                    "{}.{name}",
                    pointer.trim_start_matches('/').replace('/', ".")
                )
            };
            let dotted = dotted.replace("paths.0", "paths[0]");
            assert_eq!(err.field, dotted, "removing {pointer}/{name}: {err}");
            checked += 1;
        }
        // Members the schema knows but does not require are optional in the type too.
        for (name, _) in schema_node["properties"].as_object().unwrap() {
            if required.iter().any(|r| r == name) {
                continue;
            }
            let mut doc = base.clone();
            let parent = if pointer.is_empty() {
                &mut doc
            } else {
                doc.pointer_mut(pointer).unwrap()
            };
            parent.as_object_mut().unwrap().remove(name);
            parse_value(&doc).unwrap_or_else(|e| panic!("optional {pointer}/{name} refused: {e}"));
        }
    };
    let props = &schema["properties"];
    visit("", &schema);
    for member in ["model", "hardware", "engine", "recipe", "quality"] {
        visit(&format!("/{member}"), &props[member]);
    }
    visit("/paths/0", &props["paths"]["items"]);
    visit("/unavailable_paths/0", &props["unavailable_paths"]["items"]);
    assert!(checked >= 30, "checked {checked} required members");
}

#[test]
fn strict_parse_names_the_field() {
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>, RecordErrorKind, &str)> = vec![
        (
            "unknown schema",
            Box::new(|v| v["schema"] = json!("vkae.run.v2")),
            RecordErrorKind::UnknownSchema,
            "schema",
        ),
        (
            "unknown member",
            Box::new(|v| v["model"]["extra"] = json!(1)),
            RecordErrorKind::Malformed,
            "model.extra",
        ),
        (
            "wrong type",
            Box::new(|v| v["recipe"]["batch"] = json!("8")),
            RecordErrorKind::Malformed,
            "recipe.batch",
        ),
        (
            "negative",
            Box::new(|v| v["recipe"]["batch"] = json!(-1)),
            RecordErrorKind::Malformed,
            "recipe.batch",
        ),
        (
            "zero batch",
            Box::new(|v| v["recipe"]["batch"] = json!(0)),
            RecordErrorKind::Malformed,
            "recipe.batch",
        ),
        (
            "bad role",
            Box::new(|v| v["paths"][0]["role"] = json!("hero")),
            RecordErrorKind::Malformed,
            "paths[0].role",
        ),
        (
            "zero rate",
            Box::new(|v| v["paths"][1]["tokens_per_s"][2] = json!(0.0)),
            RecordErrorKind::Malformed,
            "paths[1].tokens_per_s[2]",
        ),
        (
            "no reps",
            Box::new(|v| v["paths"][1]["tokens_per_s"] = json!([])),
            RecordErrorKind::Malformed,
            "paths[1].tokens_per_s",
        ),
        (
            "dup path",
            Box::new(|v| v["paths"][1]["name"] = v["paths"][0]["name"].clone()),
            RecordErrorKind::Malformed,
            "paths[1].name",
        ),
        (
            "weights",
            Box::new(|v| v["model"]["weights"] = json!("sha256:XYZ")),
            RecordErrorKind::Malformed,
            "model.weights",
        ),
        (
            "time",
            Box::new(|v| v["started_at"] = json!("yesterday")),
            RecordErrorKind::Malformed,
            "started_at",
        ),
        (
            "time order",
            Box::new(|v| v["finished_at"] = json!("2026-11-28T09:00:00Z")),
            RecordErrorKind::Malformed,
            "finished_at",
        ),
        (
            "agreement",
            Box::new(|v| v["quality"]["top1_agreement"] = json!(1.5)),
            RecordErrorKind::Malformed,
            "quality.top1_agreement",
        ),
        (
            "ppl",
            Box::new(|v| v["quality"]["vkae_ppl"] = json!(0.5)),
            RecordErrorKind::Malformed,
            "quality.vkae_ppl",
        ),
        (
            "run id",
            Box::new(|v| v["run_id"] = json!("a b")),
            RecordErrorKind::Malformed,
            "run_id",
        ),
        (
            "null optional",
            Box::new(|v| v["paths"][1]["detail"] = Value::Null),
            RecordErrorKind::Malformed,
            "",
        ),
        (
            "not object",
            Box::new(|v| *v = json!([1])),
            RecordErrorKind::Malformed,
            "",
        ),
    ];
    for (label, mutate, kind, field) in cases {
        let mut doc = sample();
        mutate(&mut doc);
        let err = parse_value(&doc).unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_str()),
            (kind, field),
            "{label}: {err}"
        );
        assert!(!err.message.is_empty());
    }
    for text in [
        "",
        "{",
        "not json",
        "{\"schema\": \"vkae.run.v1\", \"x\": NaN}",
        "[1e400]",
    ] {
        assert_eq!(
            RunRecord::parse(text.as_bytes()).unwrap_err().kind,
            RecordErrorKind::Malformed,
            "{text}"
        );
    }
}

#[test]
fn sign_verify_and_tamper() {
    let (signing, verifying) = keygen();
    let mut record = RunRecord::parse(SAMPLE_RECORD.as_bytes()).unwrap();
    assert_eq!(
        record.verify(&verifying).unwrap_err().kind,
        RecordErrorKind::Unsigned
    );
    record.sign("lab-h200", &signing).unwrap();
    record.verify(&verifying).unwrap();

    // The signed document survives a trip through bytes, with members in any order and any whitespace.
    let mut value = record.to_value();
    let reordered = serde_json::to_string(&value).unwrap();
    RunRecord::parse(reordered.as_bytes())
        .unwrap()
        .verify(&verifying)
        .unwrap();

    // Any change to a signed member breaks the signature.
    value["paths"][1]["tokens_per_s"][0] = json!(999.0);
    let tampered = parse_value(&value).unwrap();
    assert_eq!(
        tampered.verify(&verifying).unwrap_err().kind,
        RecordErrorKind::BadSignature
    );

    let (_, other) = keygen();
    assert_eq!(
        record.verify(&other).unwrap_err().kind,
        RecordErrorKind::BadSignature
    );

    let mut garbled = record.clone();
    garbled.signature = Some("not base64!".into());
    assert_eq!(
        garbled.verify(&verifying).unwrap_err().kind,
        RecordErrorKind::BadSignature
    );
}

#[test]
fn canonical_form_is_sorted_compact_and_excludes_signature() {
    let (signing, _) = keygen();
    let mut record = RunRecord::parse(SAMPLE_RECORD.as_bytes()).unwrap();
    let unsigned = record.canonical_unsigned_bytes();
    record.sign("k", &signing).unwrap();
    let text = String::from_utf8(record.canonical_unsigned_bytes()).unwrap();
    assert_ne!(unsigned, text.as_bytes(), "lane_key changed to k");
    assert!(!text.contains("signature"));
    assert!(text.starts_with("{\"engine\":{\"commit\":"), "{text}");
    assert!(
        !text.contains(' ') || text.contains("\"transformers 5.17.0"),
        "no whitespace outside strings"
    );
    assert!(text.contains("\"tokens_per_s\":[9.71,9.76,9.8]"), "{text}");
}

#[test]
fn key_files_and_encodings() {
    let (signing, verifying) = keygen();
    let dir = std::env::temp_dir().join(format!("vkae-record-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lane.key");
    let _ = std::fs::remove_file(&path);
    write_signing_key_file(&path, &signing).unwrap();
    assert!(
        write_signing_key_file(&path, &signing).is_err(),
        "never overwrites a key"
    );
    let read = read_signing_key_file(&path).unwrap();
    assert_eq!(read.to_bytes(), signing.to_bytes());
    let public = encode_verifying_key(&verifying);
    assert_eq!(public.len(), 44);
    assert_eq!(decode_verifying_key(&public).unwrap(), verifying);
    assert_eq!(
        decode_verifying_key("AAAA").unwrap_err().kind,
        RecordErrorKind::BadKey
    );
    assert_eq!(
        decode_signing_key("%%%").unwrap_err().kind,
        RecordErrorKind::BadKey
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn write_keypair_writes_both_files_and_never_overwrites() {
    let dir = std::env::temp_dir().join(format!("vkae-keypair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("lane.key");
    let _ = std::fs::remove_file(&secret);
    let _ = std::fs::remove_file(dir.join("lane.key.pub"));
    let files = vkae_record::write_keypair(&secret).unwrap();
    assert_eq!(files.public_key_file, dir.join("lane.key.pub"));
    let key = vkae_record::read_signing_key_file(&secret).unwrap();
    assert_eq!(
        vkae_record::encode_verifying_key(&key.verifying_key()),
        files.public_key
    );
    assert_eq!(
        std::fs::read_to_string(&files.public_key_file).unwrap(),
        format!("{}\n", files.public_key)
    );
    assert!(
        vkae_record::write_keypair(&secret).is_err(),
        "an existing key is never overwritten"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The optional members of later harnesses: a context path (`gating: false`) and the serving recipe's name and
/// SHA-256. A record with them parses, round-trips and signs; without them it means what it always meant (every
/// path gates, no recipe named); malformed values name their field.
#[test]
fn optional_gating_and_recipe_members_round_trip_and_are_checked() {
    let old = RunRecord::parse(SAMPLE_RECORD.as_bytes()).unwrap();
    assert!(old.paths.iter().all(|p| p.gates()) && old.recipe.name.is_none());
    let mut v = sample();
    v["paths"][0]["gating"] = json!(false);
    v["recipe"]["name"] = json!("e4b-h200");
    v["recipe"]["sha256"] = json!("0123456789abcdef".repeat(4));
    let mut record = parse_value(&v).unwrap();
    assert!(!record.paths[0].gates() && record.paths[1].gates());
    assert_eq!(record.recipe.name.as_deref(), Some("e4b-h200"));
    assert_eq!(
        record.to_value(),
        v,
        "the members survive serialisation as given"
    );
    let (key, public) = keygen();
    record.sign("lab", &key).unwrap();
    record.verify(&public).unwrap();
    assert_eq!(RunRecord::parse(&record.to_json_bytes()).unwrap(), record);
    let mut flipped = record.clone();
    flipped.paths[0].gating = None;
    assert_eq!(
        flipped.verify(&public).unwrap_err().kind,
        RecordErrorKind::BadSignature,
        "whether a path gates is signed"
    );
    let cases: Vec<(Box<dyn Fn(&mut Value)>, &str, &str)> = vec![
        (
            Box::new(|v| v["paths"][0]["gating"] = json!(true)),
            "paths[0].gating",
            "only false",
        ),
        (
            Box::new(|v| v["paths"][0]["gating"] = json!("no")),
            "paths[0].gating",
            "",
        ),
        (
            Box::new(|v| v["recipe"]["sha256"] = json!("ABC")),
            "recipe.sha256",
            "64 lowercase hex",
        ),
        (
            Box::new(|v| {
                v["recipe"].as_object_mut().unwrap().remove("sha256");
            }),
            "recipe.sha256",
            "needs its sha256",
        ),
        (
            Box::new(|v| {
                v["recipe"].as_object_mut().unwrap().remove("name");
            }),
            "recipe.name",
            "needs the recipe's name",
        ),
        (
            Box::new(|v| v["recipe"]["name"] = json!(" ")),
            "recipe.name",
            "must not be empty",
        ),
    ];
    for (change, field, needle) in cases {
        let mut bad = v.clone();
        change(&mut bad);
        let err = parse_value(&bad).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(needle), "{err}");
    }
}
