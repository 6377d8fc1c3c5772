//! The chart's CRD files are the generator's output, byte for byte.

use std::path::Path;

use streamspace_k8s::{CRD_DIR, crd_files};

#[test]
fn the_charts_crd_files_are_the_generators_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(CRD_DIR);
    let files = crd_files().unwrap();
    assert_eq!(files.len(), 2, "Session and Template");
    for (name, generated) in files {
        let checked_in = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{CRD_DIR}/{name} is not what the generator writes; regenerate the CRDs with `make crds` \
             (`streamspace kubernetes crds --dir {CRD_DIR}`)"
        );
    }
}
