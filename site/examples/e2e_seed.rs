//! Test helper for the end-to-end suite: writes signed run records into a folder and prints the lane key's
//! public key, so the suite can seed a fresh store with the real `vkae` CLI (`lane-key add`, `ingest`).
//!
//! Usage: e2e_seed DIR LANE_KEY_NAME   (prints the public key, base64)
//! Records written: `good.json` (E4B, every lane passes: promotable), `bad-quality.json` (E4B, perplexity 5%
//! over the reference: the quality lane fails), `porting.json` (E2B: lanes pass, but a porting-track family).

use std::path::PathBuf;
use vkae_record::{RunRecord, SAMPLE_RECORD};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, key_name] = args.as_slice() else {
        return Err("usage: e2e_seed DIR LANE_KEY_NAME".into());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (secret, public) = vkae_record::keygen();
    let mut base = RunRecord::parse(SAMPLE_RECORD.as_bytes()).map_err(|e| e.to_string())?;
    // The E4B profile's declared baseline (content/profiles.toml), with transformers eager as a context peer.
    let mut eager = base.paths[0].clone();
    base.paths[0].name = "hf-transformers-static-cudagraph".into();
    eager.role = vkae_record::Role::Peer;
    eager.gating = Some(false);
    eager.tokens_per_s = vec![3.1, 4.2, 3.05];
    base.paths.push(eager);

    let mut good = base.clone();
    good.run_id = "e2e-e4b-h200-good".into();
    let mut bad = base.clone();
    bad.run_id = "e2e-e4b-h200-bad-quality".into();
    bad.quality.vkae_ppl = bad.quality.reference_ppl * 1.05;
    let mut porting = base;
    porting.run_id = "e2e-e2b-h200-porting".into();
    porting.model.family = "E2B".into();
    porting.model.repo = "google/gemma-4-E2B-it".into();

    for (file, mut record) in [
        ("good.json", good),
        ("bad-quality.json", bad),
        ("porting.json", porting),
    ] {
        record.sign(key_name, &secret).map_err(|e| e.to_string())?;
        let path = dir.join(file);
        std::fs::write(&path, record.to_json_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("{}", vkae_record::encode_verifying_key(&public));
    Ok(())
}
