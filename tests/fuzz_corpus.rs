//! Corpus replay on stable: every committed input of every fuzz target (`fuzz/corpus/<name>/`,
//! and regressions in `fuzz/regressions/<name>/`) runs through the same property checks the
//! `cargo fuzz` targets call, so CI needs no nightly toolchain.

use std::fs;
use std::path::{Path, PathBuf};

use torsion_protocols::fuzz_props::TARGETS;

/// The files directly under `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => {
            entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect()
        }
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Runs every file under `fuzz/<kind>/<target>/` through its target's checks; returns how
/// many ran, after asserting none failed (all failures listed, each with its panic above).
fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind);
    let mut total = 0;
    let mut failed = Vec::new();
    for (name, check) in TARGETS {
        for file in files(&root.join(name)) {
            let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(format!("{name}: {}", file.display()));
            }
            total += 1;
        }
    }
    assert!(failed.is_empty(), "inputs failing their properties:\n{}", failed.join("\n"));
    total
}

#[test]
fn every_committed_corpus_input_keeps_its_target_s_properties() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, _) in TARGETS {
        assert!(!files(&root.join(name)).is_empty(), "fuzz/corpus/{name} has no inputs");
        assert!(
            root.parent().unwrap().join(format!("fuzz_targets/{name}.rs")).is_file(),
            "no fuzz target for {name}"
        );
    }
    assert!(replay("corpus") >= TARGETS.len());
}

#[test]
fn every_crash_the_fuzzer_found_stays_fixed() {
    replay("regressions");
}
