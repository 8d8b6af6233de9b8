//! The seed scenario of SEED.md as shell use: enqueue, run-once with a forward handler,
//! dump prints exactly Mailman's six lines, and the message comes out byte for byte.

use crate::common::*;

#[test]
fn seed_scenario_end_to_end() {
    let env = Env::new();
    let fb = env.enqueue(
        "test",
        SEED,
        &[
            "-m",
            "listid=test.example.com",
            "-m",
            "foo=yes",
            "-m",
            "bar=no",
        ],
    );
    assert_eq!(env.files("test"), vec![format!("{fb}.pck")]);

    let out = env.run(&["run-once", "test", "--forward", "out"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.files("test").is_empty());
    let files = env.files("out");
    assert_eq!(files.len(), 1);
    let out_fb = files[0].strip_suffix(".pck").unwrap();

    let dump = env.run(&["dump", "out", out_fb], b"");
    assert_eq!(dump.status.code(), Some(0), "{}", stderr(&dump));
    assert_eq!(
        stdout(&dump),
        "_parsemsg: False\nbar      : no\nfoo      : yes\nlang     : en\nlistid   : test.example.com\nversion  : 3\n"
    );

    let msg = env.run(&["dequeue", "out"], b"");
    assert_eq!(msg.status.code(), Some(0));
    assert_eq!(msg.stdout, SEED);
    assert!(env.files("out").is_empty());
}
