//! The committed man pages and completions must be what the clap definition generates
//! now: a flag added without regenerating them fails here.

use std::fs;

use crate::common::*;

const HOW: &str = "run scripts/generate-docs and commit man/ and completions/";

#[test]
fn completions_are_current() {
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        ("bash", "qtool.bash"),
        ("zsh", "_qtool"),
        ("fish", "qtool.fish"),
    ] {
        let out = env.run(&["completions", shell], b"");
        assert_eq!(out.status.code(), Some(0));
        let committed = fs::read(root.join("completions").join(file)).unwrap_or_default();
        assert!(
            out.stdout == committed,
            "completions/{file} is stale: {HOW}"
        );
    }
}

#[test]
fn man_pages_are_current() {
    let env = Env::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = env.root().join("man");
    let out = env.run(&["man", dir.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut generated: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    generated.sort();
    let mut committed: Vec<String> = fs::read_dir(root.join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert_eq!(generated, committed, "the set of man pages changed: {HOW}");
    assert!(generated.contains(&"qtool.1".to_string()));
    assert!(generated.contains(&"qtool-enqueue.1".to_string()));
    for name in generated {
        let now = fs::read(dir.join(&name)).unwrap();
        let then = fs::read(root.join("man").join(&name)).unwrap();
        assert!(now == then, "man/{name} is stale: {HOW}");
    }
}
