// Re-embed the migrations and content when they change (sqlx::migrate! and include_str! read them at compile time).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-changed=../content");
}
