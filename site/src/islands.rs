//! The interactive parts, and the only code shipped as WebAssembly (islands mode): the speed dashboard, the
//! preview form and the operator controls. Everything else on a page is server-rendered HTML.

use crate::api::{self, LoginOutcome};
use crate::chart::{speed_svg, SpeedFilter};
use crate::model::{ClaimLevel, SpeedKind, SpeedPoint};
use crate::preview_form::{
    form_errors, FieldError, PreviewChoices, PreviewInput, PreviewOutcome, MESSAGE_MAX_CHARS,
};
use crate::table::TableHead;
use leptos::prelude::*;

/// "true" once the island runs in the browser (effects never run on the server): the end-to-end tests wait
/// for it before interacting, and it costs nothing else.
fn hydrated() -> Signal<&'static str> {
    let ready = RwSignal::new("false");
    Effect::new(move |_| ready.set("true"));
    ready.into()
}

fn option_of(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// One labelled chart filter: `all` (the empty value) first, then each (value, text) of `options`; `on_value`
/// gets the chosen value.
fn filter_select(
    label: &'static str,
    id: &'static str,
    all: &'static str,
    options: Vec<(String, String)>,
    on_value: impl Fn(String) + 'static,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <select id=id on:change=move |ev| on_value(event_target_value(&ev))>
                <option value="">{all}</option>
                {options.into_iter().map(|(value, text)| view! { <option value=value>{text}</option> }).collect_view()}
            </select>
        </label>
    }
}

/// The full-family speed view with its four filters. The first paint is the server's SVG; a filter change
/// redraws it here with the same code.
#[island]
pub fn SpeedDashboard(
    points: Vec<SpeedPoint>,
    gpus: Vec<String>,
    families: Vec<String>,
    batches: Vec<u32>,
) -> impl IntoView {
    let ready = hydrated();
    let filter = RwSignal::new(SpeedFilter::default());
    let points = StoredValue::new(points);
    let selected = Memo::new(move |_| {
        points.with_value(|all| {
            let f = filter.get();
            let kept = f.apply(all);
            let measured = kept
                .iter()
                .filter(|p| p.kind == SpeedKind::Measured)
                .count();
            (speed_svg(&kept), kept.len(), measured)
        })
    });
    // The same points as a table, for screen readers and for reading exact values.
    let rows = move || {
        points.with_value(|all| {
            filter
                .get()
                .apply(all)
                .into_iter()
                .map(|p| {
                    let kind = match p.kind {
                        SpeedKind::Measured => "measured tokens/s",
                        SpeedKind::Planning => "planning index",
                    };
                    view! {
                        <tr>
                            <td>{p.family.clone()}</td>
                            <td>{p.gpu.clone()}</td>
                            <td>{p.batch}</td>
                            <td>{kind}</td>
                            <td class="num">{crate::model::fmt_tps(p.value)}</td>
                        </tr>
                    }
                })
                .collect_view()
        })
    };
    let same = |v: String| (v.clone(), v);
    let gpu_options = gpus.into_iter().map(same).collect();
    let family_options = families.into_iter().map(same).collect();
    let batch_options = batches
        .into_iter()
        .map(|b| (b.to_string(), format!("batch {b}")))
        .collect();
    let kind_options = vec![
        ("measured".to_string(), "Measured only".to_string()),
        ("planning".to_string(), "Planning index only".to_string()),
    ];

    view! {
        <form class="filters" aria-label="Chart filters" data-hydrated=ready on:submit=|ev| ev.prevent_default()>
            {filter_select("GPU", "filter-gpu", "All GPUs", gpu_options, move |v| {
                filter.update(|f| f.gpu = option_of(v))
            })}
            {filter_select("Family", "filter-family", "All families", family_options, move |v| {
                filter.update(|f| f.family = option_of(v))
            })}
            {filter_select("Batch", "filter-batch", "All batches", batch_options, move |v| {
                filter.update(|f| f.batch = v.parse().ok())
            })}
            {filter_select("Show", "filter-kind", "Measured and planning", kind_options, move |v| {
                let kind = match v.as_str() {
                    "measured" => Some(SpeedKind::Measured),
                    "planning" => Some(SpeedKind::Planning),
                    _ => None,
                };
                filter.update(|f| f.kind = kind)
            })}
        </form>
        <p class="chart-count" aria-live="polite" id="speed-chart-count">
            {move || {
                let (_, bars, measured) = selected.get();
                format!("{bars} bars shown, {measured} measured")
            }}
        </p>
        <div class="chart" id="speed-chart" inner_html=move || selected.get().0></div>
        <Show when=move || selected.get().1 == 0>
            <p class="state" id="speed-chart-empty">"No speed point matches these filters."</p>
        </Show>
        <details class="chart-data">
            <summary>"The chart's values as a table"</summary>
            <div class="table-wrap">
                <table id="speed-table">
                    <TableHead columns=&["Family", "GPU", "Batch", "Kind", "Value"] />
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </details>
    }
}

/// The private-preview request form: checked here as the visitor types and sends, checked again by the
/// server, which may answer with per-field errors. Input is never cleared on an error.
#[island]
pub fn PreviewForm(
    families: Vec<String>,
    /// (id, label) of each GPU lane.
    gpus: Vec<(String, String)>,
    paths: Vec<(String, String)>,
    confirmation: String,
) -> impl IntoView {
    let ready = hydrated();
    let input = RwSignal::new(PreviewInput::default());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let failure = RwSignal::new(None::<String>);
    let accepted = RwSignal::new(None::<String>);
    let family_choices: Vec<(String, String)> =
        families.iter().map(|f| (f.clone(), f.clone())).collect();
    let choices = StoredValue::new(PreviewChoices {
        service_paths: paths.iter().map(|(slug, _)| slug.clone()).collect(),
        families: families.clone(),
        gpus: gpus.iter().map(|(id, _)| id.clone()).collect(),
    });
    let gpu_choices = gpus;
    let send = Action::new(|input: &PreviewInput| api::submit_preview(input.clone()));

    Effect::new(move |_| {
        if let Some(result) = send.value().get() {
            match result {
                Ok(PreviewOutcome::Accepted { reference }) => accepted.set(Some(reference)),
                Ok(PreviewOutcome::Invalid { errors: list }) => errors.set(list),
                Ok(PreviewOutcome::RateLimited { retry_after_s }) => failure.set(Some(format!(
                    "Too many requests from your network; try again in {retry_after_s} s."
                ))),
                Err(error) => failure.set(Some(format!("The request could not be sent: {error}"))),
            }
        }
    });

    let error_for = move |field: &'static str| {
        move || {
            errors.with(|list| {
                list.iter()
                    .find(|e| e.field == field)
                    .map(|e| e.message.clone())
            })
        }
    };
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        failure.set(None);
        let current = input.get_untracked();
        let found = choices.with_value(|c| form_errors(&current, c));
        if let Some(first) = found.first() {
            if let Some(element) = document().get_element_by_id(&format!("pf-{}", first.field)) {
                use leptos::wasm_bindgen::JsCast;
                if let Ok(element) = element.dyn_into::<leptos::web_sys::HtmlElement>() {
                    let _ = element.focus();
                }
            }
            errors.set(found);
            return;
        }
        errors.set(Vec::new());
        send.dispatch(current);
    };

    // One labelled control with its message; `aria-describedby` ties the message to the control.
    let text_field = move |field: &'static str,
                           label: &'static str,
                           kind: &'static str,
                           autocomplete: &'static str| {
        let message = error_for(field);
        view! {
            <div class="field">
                <label for=format!("pf-{field}")>{label}</label>
                <input
                    id=format!("pf-{field}")
                    name=field
                    type=kind
                    autocomplete=autocomplete
                    required=true
                    aria-invalid=move || if message().is_some() { "true" } else { "false" }
                    aria-describedby=format!("pf-{field}-error")
                    prop:value=move || input.with(|i| field_value(i, field).to_string())
                    on:input=move |ev| input.update(|i| *field_value_mut(i, field) = event_target_value(&ev))
                />
                <p class="field-error" id=format!("pf-{field}-error")>{message}</p>
            </div>
        }
    };

    let path_choices = paths
        .into_iter()
        .map(|(slug, label)| {
            let value = slug.clone();
            view! {
                <label class="choice">
                    <input
                        type="radio"
                        name="service_path"
                        id=format!("pf-path-{slug}")
                        value=slug.clone()
                        prop:checked=move || input.with(|i| i.service_path == value)
                        on:change=move |_| input.update(|i| i.service_path = slug.clone())
                    />
                    {label}
                </label>
            }
        })
        .collect_view();
    let select = move |field: &'static str,
                       label: &'static str,
                       choices: Vec<(String, String)>,
                       none: &'static str| {
        let message = error_for(field);
        view! {
            <div class="field">
                <label for=format!("pf-{field}")>{label}</label>
                <select
                    id=format!("pf-{field}")
                    name=field
                    aria-invalid=move || if message().is_some() { "true" } else { "false" }
                    aria-describedby=format!("pf-{field}-error")
                    prop:value=move || input.with(|i| field_value(i, field).to_string())
                    on:change=move |ev| input.update(|i| *field_value_mut(i, field) = event_target_value(&ev))
                >
                    <option value="">{none}</option>
                    {choices.into_iter().map(|(value, label)| view! { <option value=value>{label}</option> }).collect_view()}
                </select>
                <p class="field-error" id=format!("pf-{field}-error")>{message}</p>
            </div>
        }
    };
    let path_error = error_for("service_path");
    let message_error = error_for("message");

    view! {
        <Show
            when=move || accepted.get().is_none()
            fallback=move || {
                view! {
                    <div class="confirmation" role="status" id="preview-confirmation">
                        <h2>"Request received"</h2>
                        <p>{confirmation.clone()}</p>
                        <p>"Reference: " <code>{move || accepted.get().unwrap_or_default()}</code></p>
                    </div>
                }
            }
        >
            <form class="preview-form" novalidate=true on:submit=on_submit id="preview-form" data-hydrated=ready>
                {text_field("name", "Your name", "text", "name")}
                {text_field("email", "Work email", "email", "email")}
                {text_field("company", "Company", "text", "organization")}
                <fieldset
                    class="field"
                    id="pf-service_path"
                    tabindex="-1"
                    aria-describedby="pf-service_path-error"
                >
                    <legend>"Service path"</legend>
                    {path_choices.clone()}
                    <p class="field-error" id="pf-service_path-error">{path_error}</p>
                </fieldset>
                {select("model_family", "Model family (optional)", family_choices.clone(), "Not sure yet")}
                {select("gpu", "GPU lane (optional)", gpu_choices.clone(), "Not sure yet")}
                <div class="field">
                    <label for="pf-message">"What do you want to serve? (optional)"</label>
                    <textarea
                        id="pf-message"
                        name="message"
                        rows="5"
                        aria-invalid=move || if message_error().is_some() { "true" } else { "false" }
                        aria-describedby="pf-message-hint pf-message-error"
                        prop:value=move || input.with(|i| i.message.clone())
                        on:input=move |ev| input.update(|i| i.message = event_target_value(&ev))
                    ></textarea>
                    <p class="hint" id="pf-message-hint">
                        {move || format!("{} of {MESSAGE_MAX_CHARS} characters", input.with(|i| i.message.chars().count()))}
                    </p>
                    <p class="field-error" id="pf-message-error">{message_error}</p>
                </div>
                <div class="honeypot" aria-hidden="true">
                    <label for="pf-website">"Leave this empty"</label>
                    <input
                        id="pf-website"
                        name="website"
                        tabindex="-1"
                        autocomplete="off"
                        on:input=move |ev| input.update(|i| i.website = event_target_value(&ev))
                    />
                </div>
                <p class="form-error" role="alert">{move || failure.get()}</p>
                <button type="submit" disabled=move || send.pending().get()>
                    {move || if send.pending().get() { "Sending…" } else { "Request private preview" }}
                </button>
            </form>
        </Show>
    }
}

fn field_value<'a>(input: &'a PreviewInput, field: &str) -> &'a str {
    match field {
        "name" => &input.name,
        "email" => &input.email,
        "company" => &input.company,
        "model_family" => &input.model_family,
        "gpu" => &input.gpu,
        _ => &input.message,
    }
}

fn field_value_mut<'a>(input: &'a mut PreviewInput, field: &str) -> &'a mut String {
    match field {
        "name" => &mut input.name,
        "email" => &mut input.email,
        "company" => &mut input.company,
        "model_family" => &mut input.model_family,
        "gpu" => &mut input.gpu,
        _ => &mut input.message,
    }
}

fn reload() {
    let _ = window().location().reload();
}

/// Operator login; on success the page reloads and the server renders the internal view.
#[island]
pub fn LoginForm() -> impl IntoView {
    let ready = hydrated();
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let send = Action::new(|(n, p): &(String, String)| api::login(n.clone(), p.clone()));
    Effect::new(move |_| match send.value().get() {
        Some(Ok(LoginOutcome::LoggedIn)) => reload(),
        Some(Ok(LoginOutcome::Refused(why))) => message.set(Some(why)),
        Some(Err(error)) => message.set(Some(format!("Login failed: {error}"))),
        None => {}
    });
    view! {
        <form
            class="login"
            id="login-form"
            data-hydrated=ready
            on:submit=move |ev| {
                ev.prevent_default();
                send.dispatch((name.get_untracked(), password.get_untracked()));
            }
        >
            <div class="field">
                <label for="login-name">"Operator name"</label>
                <input id="login-name" name="name" autocomplete="username" required=true
                    on:input=move |ev| name.set(event_target_value(&ev)) prop:value=name />
            </div>
            <div class="field">
                <label for="login-password">"Password"</label>
                <input id="login-password" name="password" type="password" autocomplete="current-password" required=true
                    on:input=move |ev| password.set(event_target_value(&ev)) prop:value=password />
            </div>
            <p class="form-error" role="alert" id="login-error">{move || message.get()}</p>
            <button type="submit" disabled=move || send.pending().get()>"Log in"</button>
        </form>
    }
}

#[island]
pub fn LogoutButton(csrf: String) -> impl IntoView {
    let send = Action::new(|csrf: &String| api::logout(csrf.clone()));
    Effect::new(move |_| {
        if send.value().get().is_some() {
            reload()
        }
    });
    view! {
        <button type="button" class="secondary" id="logout" on:click=move |_| { send.dispatch(csrf.clone()); }>
            "Log out"
        </button>
    }
}

/// Promote (with claim level and reason) or retract one run. The server re-checks everything.
#[island]
pub fn RunActions(run_id: String, csrf: String, promoted: bool) -> impl IntoView {
    let ready = hydrated();
    let level = RwSignal::new(ClaimLevel::VkaePath.slug().to_string());
    let reason = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    let run = StoredValue::new(run_id.clone());
    let csrf = StoredValue::new(csrf);
    let promote = Action::new(move |(level, reason): &(String, String)| {
        api::promote(
            run.get_value(),
            level.clone(),
            reason.clone(),
            csrf.get_value(),
        )
    });
    let retract = Action::new(move |reason: &String| {
        api::retract(run.get_value(), reason.clone(), csrf.get_value())
    });
    let handle = move |result: Option<Result<Result<(), String>, ServerFnError>>| match result {
        Some(Ok(Ok(()))) => reload(),
        Some(Ok(Err(why))) => message.set(Some(why)),
        Some(Err(error)) => message.set(Some(error.to_string())),
        None => {}
    };
    Effect::new(move |_| handle(promote.value().get()));
    Effect::new(move |_| handle(retract.value().get()));
    let id = |what: &str| format!("{what}-{}", run_id);
    let level_options = ClaimLevel::ALL
        .into_iter()
        .map(|l| view! { <option value=l.slug() selected=l == ClaimLevel::VkaePath>{l.label()}</option> })
        .collect_view();

    view! {
        <form
            class="run-actions"
            data-hydrated=ready
            on:submit=move |ev| {
                ev.prevent_default();
                if reason.get_untracked().trim().is_empty() {
                    message.set(Some("Give a reason; it goes into the audit log.".into()));
                } else if promoted {
                    retract.dispatch(reason.get_untracked());
                } else {
                    promote.dispatch((level.get_untracked(), reason.get_untracked()));
                }
            }
        >
            {(!promoted)
                .then(|| {
                    view! {
                        <label for=id("level")>"Claim level"</label>
                        <select id=id("level") on:change=move |ev| level.set(event_target_value(&ev))>
                            {level_options}
                        </select>
                    }
                })}
            <label for=id("reason")>"Reason"</label>
            <input id=id("reason") required=true on:input=move |ev| reason.set(event_target_value(&ev)) prop:value=reason />
            <button type="submit" id=id(if promoted { "retract" } else { "promote" })>
                {if promoted { "Retract" } else { "Promote" }}
            </button>
            <p class="form-error" role="alert">{move || message.get()}</p>
        </form>
    }
}
