#![recursion_limit = "256"]
//! vkae-site: the VKAE product site. Leptos in islands mode: pages render on the server, and only the
//! interactive islands (`islands.rs`) hydrate as WebAssembly in the browser. `server::routes` mounts the pages
//! next to the evidence API in the `vkae serve` process.

pub mod api;
pub mod chart;
pub mod copy;
pub mod islands;
pub mod model;
pub mod pages;
pub mod preview_form;
pub mod table;

#[cfg(feature = "ssr")]
pub mod evidence;
#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_meta::provide_meta_context;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};
use pages::*;

/// The navigation, in order: (path, label).
pub const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/models", "Models"),
    ("/sizing", "GPU sizing"),
    ("/evidence", "Evidence"),
    ("/engine", "Engine"),
    ("/preview", "Private preview"),
];

/// Pages that contain islands and so load the WebAssembly bundle; every other page ships none.
pub const PAGES_WITH_ISLANDS: [&str; 3] = ["/sizing", "/preview", "/internal"];

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Router>
            <a class="skip" href="#main">"Skip to content"</a>
            <header class="site-header">
                <a class="brand" href="/">
                    <span class="mark" aria-hidden="true">"◆"</span>
                    " VKAE "
                    <span class="tagline">{copy::copy().site.tagline.clone()}</span>
                </a>
                <nav aria-label="Main">
                    <ul>
                        {NAV.map(|(href, label)| view! { <li><A href=href exact=true>{label}</A></li> }).collect_view()}
                    </ul>
                </nav>
            </header>
            <main id="main" tabindex="-1">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage ssr=SsrMode::Async />
                    <Route path=path!("/models") view=ModelsPage ssr=SsrMode::Async />
                    <Route path=path!("/sizing") view=SizingPage ssr=SsrMode::Async />
                    <Route path=path!("/evidence") view=EvidencePage ssr=SsrMode::Async />
                    <Route path=path!("/engine") view=EnginePage ssr=SsrMode::Async />
                    <Route path=path!("/preview") view=PreviewPage ssr=SsrMode::Async />
                    <Route path=path!("/internal") view=InternalPage ssr=SsrMode::Async />
                </Routes>
            </main>
            <footer class="site-footer">
                <p>
                    "VKAE by VIDRAFT. Speed figures are shown only for promoted, quality-guarded claims. "
                    <a href="/api/v1/openapi.json">"JSON API"</a> " · " <a href="/internal">"Operators"</a>
                </p>
            </footer>
        </Router>
    }
}

/// The browser entry point: hydrate the islands present on the page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
