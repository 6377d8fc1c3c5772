//! The web UI is embedded from `ui/dist` (`src/ui.rs`), whose file list is fixed when this crate
//! compiles: compile again whenever `ui/dist` changes, appears or goes, or a binary built before
//! `make ui` keeps serving no UI.

fn main() {
    println!("cargo:rerun-if-changed=../../ui/dist");
}
