//! `vkae-engine bench-serve`: the serving benchmark, in the manner of `vllm bench serve`. It starts the server
//! in-process on a loopback port and, for each concurrency level, runs that many clients over real HTTP, each
//! sending streamed completions back to back (fixed prompt and output lengths, EOS ignored). Per level:
//! time to first token p50/p99, time per output token p50/p99 (a request's decode time over its tokens after
//! the first), and output tokens per second over the level's wall time. A warm-up round at each level runs
//! first and is not counted.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::args::BenchServeArgs;
use super::server::start;
use crate::args::parse_ids;
use crate::error::{EngineError, Result};

#[derive(Clone, Debug, Serialize)]
pub struct LevelReport {
    pub concurrency: usize,
    pub requests: usize,
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    pub wall_s: f64,
    pub output_tokens_per_s: f64,
    pub ttft_p50_s: f64,
    pub ttft_p99_s: f64,
    pub tpot_p50_s: f64,
    pub tpot_p99_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchServeReport {
    pub model: String,
    pub device: String,
    pub recipe: String,
    pub recipe_sha256: String,
    pub levels: Vec<LevelReport>,
}

/// One streamed request as a client sees it.
struct Timed {
    ttft_s: f64,
    tpot_s: f64,
    tokens: usize,
}

pub fn run_cli(args: &BenchServeArgs) -> Result<()> {
    let levels: Vec<usize> = parse_ids(&args.concurrency)?
        .into_iter()
        .map(|c| c as usize)
        .collect();
    if levels.is_empty() || levels.contains(&0) || args.rounds == 0 {
        return Err(EngineError::Input(
            "--concurrency must list positive numbers and --rounds must be at least 1".into(),
        ));
    }
    if args.prompt_tokens == 0 || args.output_tokens < 2 {
        return Err(EngineError::Input(
            "--prompt-tokens must be positive and --output-tokens at least 2".into(),
        ));
    }
    let mut settings = args.serve.settings()?;
    settings.bind = "127.0.0.1:0".parse().expect("a socket address");
    let model = settings.served_model_name.clone();
    let device = format!("{:?}", settings.device).to_lowercase();
    let (recipe, recipe_sha256) = (
        settings.recipe.recipe.name.clone(),
        settings.recipe.sha256.clone(),
    );
    let vocab = settings.source.config()?.vocab_size;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server = rt.block_on(start(settings))?;
    let url = format!("http://{}/v1/completions", server.addr);
    let prompt = crate::bench::bench_prompt(vocab, args.prompt_tokens, args.prompt_seed);
    let mut reports = vec![];
    for &c in &levels {
        let body = json!({"model": model, "prompt": prompt, "max_tokens": args.output_tokens,
            "temperature": 0, "stream": true, "stream_options": {"include_usage": true},
            "ignore_eos": true})
        .to_string();
        run_level(&url, &body, c, 1)?;
        let t0 = Instant::now();
        let timed = run_level(&url, &body, c, args.rounds)?;
        let wall_s = t0.elapsed().as_secs_f64();
        let tokens: usize = timed.iter().map(|t| t.tokens).sum();
        if let Some(t) = timed.iter().find(|t| t.tokens != args.output_tokens) {
            return Err(EngineError::Input(format!(
                "a request generated {} tokens, expected {}",
                t.tokens, args.output_tokens
            )));
        }
        let ttft: Vec<f64> = timed.iter().map(|t| t.ttft_s).collect();
        let tpot: Vec<f64> = timed.iter().map(|t| t.tpot_s).collect();
        let level = LevelReport {
            concurrency: c,
            requests: timed.len(),
            prompt_tokens: args.prompt_tokens,
            output_tokens: args.output_tokens,
            wall_s,
            output_tokens_per_s: tokens as f64 / wall_s,
            ttft_p50_s: vkae_record::stats::median(&ttft).unwrap_or(f64::NAN),
            ttft_p99_s: percentile(&ttft, 0.99),
            tpot_p50_s: vkae_record::stats::median(&tpot).unwrap_or(f64::NAN),
            tpot_p99_s: percentile(&tpot, 0.99),
        };
        eprintln!(
            "concurrency {c:>3}: {:.1} output tok/s, TTFT p50 {:.2} ms p99 {:.2} ms, TPOT p50 {:.3} ms",
            level.output_tokens_per_s,
            level.ttft_p50_s * 1e3,
            level.ttft_p99_s * 1e3,
            level.tpot_p50_s * 1e3
        );
        reports.push(level);
    }
    rt.block_on(server.shutdown())?;
    let report = BenchServeReport {
        model,
        device,
        recipe,
        recipe_sha256,
        levels: reports,
    };
    let text = serde_json::to_string(&report).expect("report serializes");
    if let Some(p) = &args.report {
        std::fs::write(p, &text)?;
    }
    println!("{text}");
    Ok(())
}

/// `concurrency` clients, each sending `rounds` requests one after another.
fn run_level(url: &str, body: &str, concurrency: usize, rounds: usize) -> Result<Vec<Timed>> {
    let results: Vec<Result<Vec<Timed>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| s.spawn(move || (0..rounds).map(|_| streamed(url, body)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let mut all = vec![];
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn streamed(url: &str, body: &str) -> Result<Timed> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let t0 = Instant::now();
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| EngineError::Input(format!("POST {url}: {e}")))?;
    let status = resp.status().as_u16();
    let mut reader = BufReader::new(resp.into_body().into_reader());
    if status != 200 {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut text);
        return Err(EngineError::Input(format!(
            "the server answered {status}: {text}"
        )));
    }
    let (mut first, mut last, mut tokens) = (None, None, 0usize);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let Some(data) = line.trim_end().strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| EngineError::Input(format!("a stream chunk is not JSON ({e}): {data}")))?;
        if v.get("error").is_some() {
            return Err(EngineError::Input(format!(
                "the server failed mid-stream: {data}"
            )));
        }
        let ids = v["choices"][0]["token_ids"]
            .as_array()
            .map_or(0, |a| a.len());
        if ids > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            tokens = n as usize;
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Err(EngineError::Input("the stream carried no tokens".into()));
    };
    Ok(Timed {
        ttft_s: (first - t0).as_secs_f64(),
        tpot_s: (last - first).as_secs_f64() / (tokens.max(2) - 1) as f64,
        tokens,
    })
}

/// Nearest-rank percentile (`q` in (0, 1]); NaN when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.99), 3.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
