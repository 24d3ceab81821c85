//! The table parts the pages and the islands share.

use leptos::prelude::*;

/// A table's header row: one `<th scope="col">` a column.
#[component]
pub fn TableHead(columns: &'static [&'static str]) -> impl IntoView {
    view! {
        <thead>
            <tr>{columns.iter().map(|c| view! { <th scope="col">{*c}</th> }).collect_view()}</tr>
        </thead>
    }
}
