//! The pages. Each page loads its data through a server function and hands it to a pure view (`*View`), which
//! is what the render tests drive. All of this runs on the server only (islands mode): the browser receives
//! HTML, plus WebAssembly for the islands a page contains.

use crate::api::{load_internal, load_public};
use crate::chart::{speed_svg, SpeedFilter};
use crate::islands::{LoginForm, LogoutButton, PreviewForm, RunActions, SpeedDashboard};
use crate::model::{
    fmt_int, fmt_tps, Claim, ClaimLevel, ClaimState, InternalData, PublicData, Quality, SpeedKind,
};
use crate::table::TableHead;
use leptos::prelude::*;
use leptos_meta::{Meta, Title};

use crate::copy::copy;

/// The page's `<title>` and description.
#[component]
fn PageMeta(title: String, description: String) -> impl IntoView {
    view! {
        <Title text=title />
        <Meta name="description" content=description />
    }
}

/// Loads the public data and shows `view` with it, or a clear state when the store cannot answer.
#[component]
fn WithPublic<V, F>(view: F) -> impl IntoView
where
    F: Fn(PublicData) -> V + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let view = std::sync::Arc::new(view);
    view! {
        <Await future=load_public() let:data>
            {match data {
                Ok(data) => view(data.clone()).into_any(),
                Err(error) => view! { <StoreDown error=error.to_string() /> }.into_any(),
            }}
        </Await>
    }
}

#[component]
fn StoreDown(error: String) -> impl IntoView {
    view! {
        <section class="state state-error" role="alert">
            <h2>"Data unavailable"</h2>
            <p>"The evidence store did not answer, so this page shows no figures. " {error}</p>
        </section>
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn date(rfc3339: &str) -> String {
    rfc3339.get(..10).unwrap_or(rfc3339).to_string()
}

/// A claim's standing in words, or None while it is current.
fn standing_note(claim: &Claim) -> Option<String> {
    let s = &claim.standing;
    match s.state {
        ClaimState::Current => None,
        ClaimState::Stale => Some(format!(
            "Stale: measured {}, current until {}",
            date(&claim.measured_at),
            date(&s.current_until)
        )),
        ClaimState::Disputed => Some(format!(
            "Disputed: a newer run of the same recipe is more than 2% slower ({}); measured {}",
            s.disputed_by.join(", "),
            date(&claim.measured_at)
        )),
    }
}

/// The guard's figures as a reader can weigh them: relative perplexity difference, top-1 agreement, mean KL
/// (raw perplexities stay in the JSON and the signed record).
fn quality_line(q: &Quality) -> String {
    format!(
        "perplexity {:+.4}% vs reference, top-1 agreement {:.1}%, mean KL {:.2e}",
        q.relative_ppl_difference() * 100.0,
        q.top1_agreement * 100.0,
        q.mean_kl
    )
}

/// Said beside quality figures measured on synthetic weights.
fn synthetic_quality_note(claim: &Claim) -> Option<&'static str> {
    claim.weights.starts_with("synthetic:").then_some(
        "Weights are synthetic (random, the family's shape): these figures check that VKAE computes what the reference computes, not language quality.",
    )
}

// ---------------------------------------------------------------------------------------------- home

#[component]
pub fn HomePage() -> impl IntoView {
    view! { <WithPublic view=|data| view! { <HomeView data /> } /> }
}

/// The launch lane whose card the home page shows.
pub const LAUNCH_FAMILY: &str = "E4B";

#[component]
pub fn HomeView(data: PublicData) -> impl IntoView {
    let c = &copy().home;
    let (title, description, heading, lead, launch, card_heading, card_intro, no_claim, pillars) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.launch.clone(),
        c.card_heading.clone(),
        c.card_intro.clone(),
        c.no_claim.clone(),
        c.pillars
            .iter()
            .map(|p| (p.name.clone(), p.text.clone()))
            .collect::<Vec<_>>(),
    );

    let claim = data.headline_claim(LAUNCH_FAMILY).cloned();
    let family_count = data.catalog.families.len();
    let repo_count: usize = data.catalog.families.iter().map(|f| f.repos.len()).sum();
    view! {
        <PageMeta title description />
        <section class="hero">
            <h1>{heading}</h1>
            <p class="lead">{lead}</p>
            <p>{launch}</p>
            <p class="cta">
                <a class="button" href="/preview">"Request private preview"</a>
                <a class="button secondary" href="/evidence">"See the evidence"</a>
            </p>
        </section>
        <ul class="pillars">
            {pillars.into_iter().map(|(name, text)| view! { <li><h2>{name}</h2><p>{text}</p></li> }).collect_view()}
        </ul>
        <section class="card" aria-labelledby="card-heading" id="performance-card">
            <h2 id="card-heading">{card_heading} " — Gemma 4 " {LAUNCH_FAMILY}</h2>
            <p>{card_intro}</p>
            {match claim {
                Some(claim) => view! { <ClaimFigures claim /> }.into_any(),
                None => view! { <p class="state" id="no-claim">{no_claim}</p> }.into_any(),
            }}
        </section>
        <section class="catalog-summary">
            <p>
                <strong>{repo_count}</strong> " official Google BF16 serving repositories in "
                <strong>{family_count}</strong> " families, plus "
                <strong>{data.catalog.adjacent.len()}</strong> " adjacent lane. "
                <a href="/models">"The catalog"</a> " · " <a href="/sizing">"GPU sizing"</a>
            </p>
        </section>
    }
}

/// The figures of one promoted claim, each from the claim record; derived ones labelled. Only called for a
/// claim with derived figures (see `PublicData::headline_claim`).
#[component]
fn ClaimFigures(claim: Claim) -> impl IntoView {
    let derived = claim.derived.clone();
    let eager = derived.as_ref().and_then(|d| d.eager.clone());
    let standing = standing_note(&claim);
    view! {
        {standing.map(|note| view! { <p class="standing">{note}</p> })}
        <dl class="figures">
            <div><dt>"VKAE"</dt><dd><span class="num">{fmt_tps(claim.vkae_tokens_per_s)}</span> " tok/s"</dd></div>
            <div>
                <dt>"Declared baseline" {claim.baseline_name.clone().map(|n| view! { <br /><small><code>{n}</code></small> })}</dt>
                <dd><span class="num">{claim.baseline_tokens_per_s.map(fmt_tps)}</span> " tok/s"</dd>
            </div>
            {derived.map(|d| view! {
                <div><dt>"Lift over the declared baseline " <small>"(derived)"</small></dt><dd><span class="num">{format!("{:.2}×", d.lift)}</span></dd></div>
                <div><dt>"Additional tokens/s " <small>"(derived)"</small></dt><dd><span class="num">{format!("+{}", fmt_tps(d.additional_tokens_per_s))}</span></dd></div>
                <div>
                    <dt>"Approx. token-cost reduction at the same GPU rate, vs the declared baseline " <small>"(derived)"</small></dt>
                    <dd><span class="num">{pct(d.cost_reduction)}</span></dd>
                </div>
            })}
            {eager.map(|e| view! {
                <div>
                    <dt>"Eager reference (context)" <br /><small><code>{e.path.clone()}</code></small></dt>
                    <dd><span class="num">{fmt_tps(e.tokens_per_s)}</span> " tok/s"</dd>
                </div>
                <div><dt>"Lift over the eager reference " <small>"(derived)"</small></dt><dd><span class="num">{format!("{:.2}×", e.lift)}</span></dd></div>
            })}
        </dl>
        <p class="provenance">
            "Claim level: " <strong>{claim.level.label()}</strong> " · "
            {format!("{}× {}", claim.gpu_count, claim.gpu)} " · "
            {format!("{}, batch {}, {} prompt + {} output tokens", claim.precision, claim.batch, claim.prompt_tokens, claim.output_tokens)} " · "
            <span class="weights">{claim.weights_label()}</span> " · measured "
            <time datetime=claim.measured_at.clone()>{date(&claim.measured_at)}</time> " · run "
            <code>{claim.run_id.clone()}</code>
        </p>
    }
}

// ---------------------------------------------------------------------------------------------- models

#[component]
pub fn ModelsPage() -> impl IntoView {
    view! { <WithPublic view=|data| view! { <ModelsView data /> } /> }
}

#[component]
pub fn ModelsView(data: PublicData) -> impl IntoView {
    let c = &copy().models;
    let (
        title,
        description,
        heading,
        lead,
        ready,
        porting,
        porting_note,
        excluded_heading,
        adjacent_heading,
    ) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.claim_ready.clone(),
        c.porting.clone(),
        c.porting_note.clone(),
        c.excluded_heading.clone(),
        c.adjacent_heading.clone(),
    );

    let repo_count: usize = data.catalog.families.iter().map(|f| f.repos.len()).sum();
    let families = data.catalog.families.clone();
    view! {
        <PageMeta title description />
        <h1>{heading}</h1>
        <p class="lead">{lead}</p>
        <p class="stats">
            <span><strong class="num">{repo_count}</strong> " official BF16 serving repos"</span>
            <span><strong class="num">{families.len()}</strong> " primary serving families"</span>
            <span><strong class="num">{data.catalog.adjacent.len()}</strong> " adjacent lane"</span>
        </p>
        <p>{porting_note}</p>
        <div class="families">
            {families
                .into_iter()
                .map(|family| {
                    let status = if family.claim_ready { ready.clone() } else { porting.clone() };
                    let class = if family.claim_ready { "badge ready" } else { "badge porting" };
                    view! {
                        <article class="family" id=format!("family-{}", family.name)>
                            <h2>{family.name.clone()} " " <span class=class>{status}</span></h2>
                            <p>{family.description.clone()}</p>
                            <dl class="facts">
                                <div><dt>"Parameters"</dt><dd>{family.params.clone()}</dd></div>
                                <div><dt>"Layers"</dt><dd>{family.layers}</dd></div>
                                <div><dt>"Context"</dt><dd>{format!("{} tokens", fmt_int(family.context_tokens))}</dd></div>
                                <div><dt>"BF16 weights"</dt><dd>{format!("{:.1} GB", family.weights_gb)}</dd></div>
                            </dl>
                            <ul class="repos">
                                {family.repos.iter().map(|r| view! { <li><code>{r.clone()}</code></li> }).collect_view()}
                            </ul>
                        </article>
                    }
                })
                .collect_view()}
        </div>
        <h2>{adjacent_heading}</h2>
        <ul>
            {data.catalog.adjacent.iter().map(|a| view! { <li><strong>{a.name.clone()}</strong> " (" <code>{a.repos.join(", ")}</code> "): " {a.note.clone()}</li> }).collect_view()}
        </ul>
        <h2>{excluded_heading}</h2>
        <ul>
            {data.catalog.excluded.iter().map(|e| view! { <li><strong>{e.name.clone()}</strong> ": " {e.reason.clone()}</li> }).collect_view()}
        </ul>
    }
}

// ---------------------------------------------------------------------------------------------- sizing

#[component]
pub fn SizingPage() -> impl IntoView {
    view! { <WithPublic view=|data| view! { <SizingView data /> } /> }
}

#[component]
pub fn SizingView(data: PublicData) -> impl IntoView {
    let c = &copy().sizing;
    let (title, description, heading, lead, chart_heading, chart_lead) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.chart_heading.clone(),
        c.chart_lead.clone(),
    );

    // A porting-track family's measured numbers stay blocked: only its planning index is drawn.
    let mut data = data;
    let ready: Vec<String> = data
        .catalog
        .families
        .iter()
        .filter(|f| f.claim_ready)
        .map(|f| f.name.clone())
        .collect();
    data.sizing
        .speed
        .retain(|p| p.kind == SpeedKind::Planning || ready.contains(&p.family));
    let gpus: Vec<String> = data.gpus.iter().map(|g| g.name.clone()).collect();
    let families: Vec<String> = data
        .catalog
        .families
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let mut batches: Vec<u32> = data.sizing.speed.iter().map(|p| p.batch).collect();
    batches.sort_unstable();
    batches.dedup();
    let measured = data
        .sizing
        .speed
        .iter()
        .filter(|p| p.kind == SpeedKind::Measured)
        .count();
    view! {
        <PageMeta title description />
        <h1>{heading}</h1>
        <p class="lead">{lead}</p>
        <p class="method">{data.sizing.method.clone()}</p>
        <div class="table-wrap">
            <table id="sizing-table">
                <caption>"BF16 serving lanes per family: weights + KV cache = memory needed; a lane fits when that is within the GPUs' memory less headroom"</caption>
                <TableHead columns=&["Family", "Scenario", "Weights", "KV cache", "Needed", "Lane"] />
                <tbody>
                    {data
                        .sizing
                        .rows
                        .iter()
                        .flat_map(|row| {
                            [("Minimum", row.minimum.clone(), true), ("Recommended", row.recommended.clone(), false)]
                                .into_iter()
                                .map(|(what, lane, first)| {
                                    let family = row.family.clone();
                                    view! {
                                        <tr class=if first { "first" } else { "second" }>
                                            {first.then(|| view! { <th scope="rowgroup" rowspan="2">{family}</th> })}
                                            <td>{what} <br /> <small>{format!("{} tokens × batch {}", fmt_int(u64::from(lane.context_tokens)), lane.batch)}</small></td>
                                            <td class="num">{format!("{:.1} GB", lane.weights_gb)}</td>
                                            <td class="num">{format!("{:.2} GB", lane.kv_cache_gb)}</td>
                                            <td class="num">{format!("{:.2} GB", lane.needed_gb)}</td>
                                            <td>
                                                {match lane.lane.clone() {
                                                    Some(fit) => view! {
                                                        <strong>{format!("{}× {}", fit.gpu_count, fit.gpu)}</strong> <br />
                                                        <small>{format!("{:.1} GB usable after {:.0}% headroom", fit.usable_gb, lane.headroom_fraction * 100.0)}</small>
                                                    }.into_any(),
                                                    None => view! { <span class="state">"No listed GPU lane holds this"</span> }.into_any(),
                                                }}
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
        <section aria-labelledby="speed-chart-title" class="dashboard">
            <h2 id="speed-chart-title">{chart_heading}</h2>
            <p>{chart_lead}</p>
            <p class="legend">
                <span class="key measured"></span> "Measured tokens/s (promoted claim) "
                <span class="key planning"></span> "Planning speed index (roofline, not a measurement)"
            </p>
            {(measured == 0).then(|| view! { <p class="state" id="no-measured">"No promoted claim yet: every bar below is a planning index, none is a measurement."</p> })}
            <SpeedDashboard points=data.sizing.speed.clone() gpus families batches />
        </section>
    }
}

/// The chart as the server draws it for the first paint with the default filter (used by the render tests).
pub fn first_paint_svg(data: &PublicData) -> String {
    let batch = data.sizing.speed.iter().map(|p| p.batch).min();
    let filter = SpeedFilter {
        batch,
        ..Default::default()
    };
    speed_svg(&filter.apply(&data.sizing.speed))
}

// ---------------------------------------------------------------------------------------------- evidence

#[component]
pub fn EvidencePage() -> impl IntoView {
    view! { <WithPublic view=|data| view! { <EvidenceView data /> } /> }
}

#[component]
pub fn EvidenceView(data: PublicData) -> impl IntoView {
    let c = &copy().evidence;
    let (title, description, heading, lead, empty_level, blocked_heading, blocked_note) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.empty_level.clone(),
        c.blocked_heading.clone(),
        c.blocked_note.clone(),
    );

    let porting: Vec<String> = data
        .catalog
        .families
        .iter()
        .filter(|f| !f.claim_ready)
        .map(|f| f.name.clone())
        .collect();
    view! {
        <PageMeta title description />
        <h1>{heading}</h1>
        <p class="lead">{lead}</p>
        {ClaimLevel::ALL
            .into_iter()
            .map(|level| {
                let mut claims: Vec<Claim> = data
                    .claims
                    .iter()
                    .filter(|c| c.level == level && !porting.contains(&c.family))
                    .cloned()
                    .collect();
                // Read as a table: by family, then batch size, newest run first within one.
                claims.sort_by(|a, b| {
                    (&a.family, a.batch, &b.measured_at).cmp(&(&b.family, b.batch, &a.measured_at))
                });
                let empty = empty_level.clone();
                view! {
                    <section class="level" id=format!("level-{}", level.slug())>
                        <h2>{level.label()}</h2>
                        {if claims.is_empty() {
                            view! { <p class="state">{empty}</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap">
                                    <table>
                                        <thead>
                                            <tr>
                                                <th scope="col">"Model"</th>
                                                <th scope="col">"Hardware"</th>
                                                <th scope="col">"Recipe"</th>
                                                <th scope="col">"Declared baseline → VKAE"</th>
                                                <th scope="col">"Quality"</th>
                                                <th scope="col">"Provenance"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {claims.into_iter().map(|c| view! { <ClaimRow claim=c /> }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }
                            .into_any()
                        }}
                    </section>
                }
            })
            .collect_view()}
        <section class="level blocked" id="porting-tracks">
            <h2>{blocked_heading}</h2>
            <ul>
                {porting
                    .iter()
                    .map(|family| {
                        view! {
                            <li class="blocked-row">
                                <strong>{family.clone()}</strong> " — " <span class="blocked-value">"blocked"</span> ": " {blocked_note.clone()}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn ClaimRow(claim: Claim) -> impl IntoView {
    let q = &claim.quality;
    let standing = standing_note(&claim);
    view! {
        <tr id=format!("claim-{}", claim.run_id)>
            <th scope="row">
                {claim.family.clone()} <br /> <small><code>{claim.repo.clone()}</code></small>
                <br /> <small class="weights">{claim.weights_label()}</small>
            </th>
            <td>{format!("{}× {}", claim.gpu_count, claim.gpu)}</td>
            <td>{format!("{}, batch {}, {}+{} tokens", claim.precision, claim.batch, claim.prompt_tokens, claim.output_tokens)}</td>
            <td class="num">
                {match claim.baseline_tokens_per_s {
                    Some(b) => format!("{} → {} tok/s", fmt_tps(b), fmt_tps(claim.vkae_tokens_per_s)),
                    None => format!("{} tok/s (no baseline path)", fmt_tps(claim.vkae_tokens_per_s)),
                }}
                <br />
                <small>{claim.derived.as_ref().map(|d| format!("{:.2}× over the declared baseline (derived)", d.lift))}</small>
                {claim.baseline_name.clone().map(|n| view! { <br /><small>"declared baseline: " <code>{n}</code></small> })}
                {claim.derived.as_ref().and_then(|d| d.eager.clone()).map(|e| view! {
                    <br /><small>{format!("{:.2}× over the eager reference ", e.lift)} <code>{e.path}</code> {format!(" at {} tok/s (derived)", fmt_tps(e.tokens_per_s))}</small>
                })}
                {standing.map(|note| view! { <br /><strong class="standing">{note}</strong> })}
            </td>
            <td>
                {quality_line(q)}
                {synthetic_quality_note(&claim).map(|note| view! { <br /><small class="synthetic-note">{note}</small> })}
            </td>
            <td>
                "engine " <code>{claim.engine_commit.chars().take(12).collect::<String>()}</code>
                <br />
                <small>"run " <code>{claim.run_id.clone()}</code> ", " <time datetime=claim.measured_at.clone()>{date(&claim.measured_at)}</time></small>
                <br />
                <small>
                    <a class="record-link" href=claim.record_url.clone() title=format!("signed by lane key {}, public key {}", claim.lane_key, claim.lane_public_key)>
                        "signed record"
                    </a>
                    " (lane " <code>{claim.lane_key.clone()}</code> ")"
                </small>
            </td>
        </tr>
    }
}

// ---------------------------------------------------------------------------------------------- engine

#[component]
pub fn EnginePage() -> impl IntoView {
    let c = &copy().engine;
    let (title, description, heading, lead, layers) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.layers
            .iter()
            .map(|l| (l.name.clone(), l.text.clone()))
            .collect::<Vec<_>>(),
    );
    view! {
        <PageMeta title description />
        <h1>{heading}</h1>
        <p class="lead">{lead}</p>
        <ol class="stack">
            {layers.into_iter().map(|(name, text)| view! { <li><h2>{name}</h2><p>{text}</p></li> }).collect_view()}
        </ol>
    }
}

// ---------------------------------------------------------------------------------------------- preview

#[component]
pub fn PreviewPage() -> impl IntoView {
    view! { <WithPublic view=|data| view! { <PreviewView data /> } /> }
}

#[component]
pub fn PreviewView(data: PublicData) -> impl IntoView {
    let c = &copy().preview;
    let (title, description, heading, lead, confirmation) = (
        c.title.clone(),
        c.description.clone(),
        c.heading.clone(),
        c.lead.clone(),
        c.confirmation.clone(),
    );
    let families = data
        .catalog
        .families
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let gpus = data
        .gpus
        .iter()
        .map(|g| (g.id.to_string(), g.name.clone()))
        .collect();
    let paths: Vec<(String, String)> = data
        .service_paths
        .iter()
        .map(|p| (p.slug.to_string(), p.name.clone()))
        .collect();
    view! {
        <PageMeta title description />
        <h1>{heading}</h1>
        <p class="lead">{lead}</p>
        <dl class="paths">
            {data.service_paths.iter().map(|p| view! { <div><dt>{p.name.clone()}</dt><dd>{p.summary.clone()}</dd></div> }).collect_view()}
        </dl>
        <noscript>
            <p class="state">"This form checks your entries as you go and needs JavaScript; please enable it to send a request."</p>
        </noscript>
        <PreviewForm families gpus paths confirmation />
    }
}

// ---------------------------------------------------------------------------------------------- internal

#[component]
pub fn InternalPage() -> impl IntoView {
    // No caching of operator data: `server::no_store_for_private` sets it for every /internal response.
    let (title, description) = (
        copy().internal.title.clone(),
        copy().internal.description.clone(),
    );
    view! {
        <PageMeta title description />
        <Meta name="robots" content="noindex" />
        <Await future=load_internal() let:data>
            {match data.clone() {
                Ok(Some(data)) => view! { <InternalView data /> }.into_any(),
                Ok(None) => {
                    view! {
                        <h1>"Operator login"</h1>
                        <p>"The evidence-promotion console is for named operators."</p>
                        <LoginForm />
                    }
                        .into_any()
                }
                Err(error) => view! { <StoreDown error=error.to_string() /> }.into_any(),
            }}
        </Await>
    }
}

#[component]
pub fn InternalView(data: InternalData) -> impl IntoView {
    let csrf = data.csrf_token.clone();
    view! {
        <div class="internal-head">
            <h1>"Evidence promotion"</h1>
            <p>"Logged in as " <strong id="operator-name">{data.operator.clone()}</strong> " " <LogoutButton csrf=csrf.clone() /></p>
        </div>
        {(!data.content_refusals.is_empty()).then(|| view! {
            <section aria-labelledby="content-refusals-heading" id="content-refusals">
                <h2 id="content-refusals-heading">"Committed promotions the gate refused"</h2>
                <p>"Entries of " <code>"content/evidence/promotions.toml"</code> " applied at start; a refused entry is never forced."</p>
                <ul>
                    {data.content_refusals.clone().into_iter().map(|r| view! {
                        <li class="content-refusal">
                            <code>{r.run_id}</code> {format!(" ({}, reviewed by {} on {}): {}", r.level, r.operator, r.date, r.message)}
                            {(!r.reasons.is_empty()).then(|| format!(" — {}", r.reasons.join(" | ")))}
                        </li>
                    }).collect_view()}
                </ul>
            </section>
        })}
        <section aria-labelledby="runs-heading">
            <h2 id="runs-heading">"Ingested runs"</h2>
            {if data.runs.is_empty() {
                view! { <p class="state">"No run has been ingested yet."</p> }.into_any()
            } else {
                view! {
                    <div class="runs">
                        {data
                            .runs
                            .into_iter()
                            .map(|run| {
                                let promoted = run.claim_status == "promoted";
                                view! {
                                    <article class="run" id=format!("run-{}", run.run_id)>
                                        <h3>
                                            <code>{run.run_id.clone()}</code> " "
                                            <span class=format!("badge status-{}", run.claim_status)>{run.claim_status.clone()}</span>
                                            {run.claim_level.map(|l| view! { " " <span class="badge">{l.label()}</span> })}
                                        </h3>
                                        <p>
                                            {format!("{} on {}, batch {}, ingested {}", run.family, run.gpu, run.batch, date(&run.ingested_at))}
                                            {run.baseline_tokens_per_s.zip(run.vkae_tokens_per_s).map(|(b, v)| format!(" · raw: baseline {} → VKAE {} tok/s (not public)", fmt_tps(b), fmt_tps(v)))}
                                        </p>
                                        {run.baseline_context.clone().map(|c| view! {
                                            <p class=if c.notable() { "baseline-context notable" } else { "baseline-context" }>
                                                {format!(
                                                    "Baseline {:+.0}% against the median {} tok/s of {} comparable runs (same model, weights, GPU, recipe and baseline)",
                                                    c.deviation * 100.0,
                                                    fmt_tps(c.others_median),
                                                    c.others,
                                                )}
                                                {c.notable().then_some(": more than a quarter off, so its derived speed-up would be too. The benchmark lane checks only the spread within a run.")}
                                            </p>
                                        })}
                                        <ul class="lanes">
                                            {run
                                                .lanes
                                                .iter()
                                                .map(|lane| {
                                                    view! {
                                                        <li class=if lane.passed { "lane pass" } else { "lane fail" }>
                                                            <strong>{lane.lane.clone()}</strong> ": " {if lane.passed { "pass" } else { "fail" }}
                                                            {(!lane.reasons.is_empty()).then(|| format!(" — {}", lane.reasons.join("; ")))}
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                        </ul>
                                        <RunActions run_id=run.run_id.clone() csrf=csrf.clone() promoted />
                                    </article>
                                }
                            })
                            .collect_view()}
                    </div>
                }
                    .into_any()
            }}
        </section>
        <section aria-labelledby="audit-heading">
            <h2 id="audit-heading">"Audit log"</h2>
            {if data.audit.is_empty() {
                view! { <p class="state">"No decision recorded yet."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table id="audit-log">
                            <TableHead columns=&["When", "Operator", "Action", "Run", "Detail"] />
                            <tbody>
                                {data.audit.into_iter().map(|e| view! {
                                    <tr><td><time datetime=e.at.clone()>{e.at.clone()}</time></td><td>{e.actor}</td><td>{e.action}</td><td><code>{e.run_id.unwrap_or_default()}</code></td><td>{e.detail.to_string()}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
        </section>
        <section aria-labelledby="inbox-heading">
            <h2 id="inbox-heading">"Preview inbox"</h2>
            <p><a href="/internal/preview-requests.csv" download="preview-requests.csv" id="inbox-csv">"Export CSV"</a></p>
            {if data.inbox.is_empty() {
                view! { <p class="state">"No preview request yet."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table id="inbox">
                            <TableHead columns=&["Received", "Name", "Email", "Company", "Path", "Family", "GPU", "Message"] />
                            <tbody>
                                {data.inbox.into_iter().map(|stored| { let r = stored.request; view! {
                                    <tr><td>{date(&stored.received_at)}</td><td>{r.name}</td><td>{r.email}</td><td>{r.company}</td><td>{r.service_path}</td><td>{r.model_family}</td><td>{r.gpu}</td><td>{r.message}</td></tr>
                                }}).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                    .into_any()
            }}
        </section>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <PageMeta title="Not found — VKAE".to_string() description="This page does not exist.".to_string() />
        <h1>"Page not found"</h1>
        <p><a href="/">"Back to the home page"</a></p>
    }
}
