//! Rebuilds the binary when the embedded web client in `static/` changes.
fn main() {
    println!("cargo:rerun-if-changed=static");
}
