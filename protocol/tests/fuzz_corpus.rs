//! Replays the committed seed corpus of every fuzz target through the target's own checks.
//!
//! The fuzz targets (`protocol/fuzz`, a separate crate outside the workspace) are plain
//! functions in `protocol/fuzz/src/lib.rs`; this test includes that file as a module, so the
//! ordinary `cargo test` runs every seed in `protocol/fuzz/corpus/<target>/` through exactly
//! the checks the fuzzer runs, without the protocol crate depending on any fuzzing crate. A
//! crash the fuzzer finds is fixed by committing its input to the corpus, after which this
//! test keeps it fixed.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The seed files of `target`, sorted so failures are reported in a stable order.
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every seed of `target` and reports all failing seeds at once.
fn replay(target: &str) {
    let (_, run) = targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target of that name");
    let files = seeds(target);
    assert!(
        files.len() >= 10,
        "corpus of {target} has only {} seeds",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("seed readable");
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on: {failed:#?}");
}

#[test]
fn frame_decoder_corpus() {
    replay("frame_decoder");
}

#[test]
fn handshake_corpus() {
    replay("handshake");
}

#[test]
fn pusher_message_corpus() {
    replay("pusher_message");
}

#[test]
fn api_auth_corpus() {
    replay("api_auth");
}

/// The contents of one seed.
fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seeds are meant to start the fuzzer deep inside each parser; these checks keep them
/// meaning what their names say. The api_auth seeds named `sdk-*` were signed by the Node and
/// Python server SDKs, so this is also a compatibility test of the verifier.
#[test]
fn api_seeds_verify_unless_they_are_meant_not_to() {
    use ringcast_protocol::Limits;
    use ringcast_protocol::api::query::Query;
    use ringcast_protocol::api::signature::{Credentials, verify};
    use targets::api_auth::{KEY, NOW, SECRET};

    const REFUSED: &[&str] = &[
        "auth-version-2",
        "bad-percent",
        "body-md5-mismatch",
        "duplicate-auth-key",
        "empty",
        "expired-timestamp",
        "missing-body-md5",
        "request-line-only",
        "wrong-key",
        "wrong-signature",
    ];
    let creds = Credentials {
        key: KEY,
        secret: SECRET,
    };
    for path in seeds("api_auth") {
        let name = path.file_name().unwrap().to_str().unwrap();
        let data = fs::read(&path).unwrap();
        let (line, body) = match data.iter().position(|&b| b == b'\n') {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (&data[..], &[][..]),
        };
        let line = std::str::from_utf8(line).unwrap();
        let (method, target) = line.split_once(' ').unwrap_or((line, ""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let verified = Query::parse(query)
            .and_then(|q| verify(method, path, &q, body, creds, NOW, &Limits::default()));
        if REFUSED.contains(&name) {
            assert!(verified.is_err(), "{name} verified");
        } else if let Err(e) = verified {
            panic!("{name} does not verify: {e}");
        }
    }
}

#[test]
fn browser_and_pusherjs_upgrades_are_accepted() {
    use ringcast_protocol::Limits;
    use ringcast_protocol::http::parse_request;
    use ringcast_protocol::ws::handshake::validate_upgrade;

    for name in [
        "chromium-upgrade",
        "firefox-upgrade",
        "pusherjs-node-upgrade",
        "upgrade-absolute-form",
        "upgrade-with-pipelined-frame",
    ] {
        let req = parse_request(&seed("handshake", name), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        let up = validate_upgrade(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(up.path.starts_with("/app/"), "{name}: {up:?}");
    }
}

#[test]
fn pusherjs_frames_carry_pusher_messages() {
    use bytes::BytesMut;
    use ringcast_protocol::Limits;
    use ringcast_protocol::pusher::parse_client_message;
    use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, Message};

    let limits = Limits::default();
    let data = seed("frame_decoder", "pusherjs-session");
    let mut buf = BytesMut::from(&data[2..]);
    let mut decoder = Decoder::new(DecoderConfig::server(&limits));
    let mut texts = 0;
    while let Some(msg) = decoder.decode(&mut buf).expect("a valid session") {
        if let Message::Text(mut text) = msg {
            parse_client_message(&mut text, &limits).expect("a Pusher message");
            texts += 1;
        }
    }
    assert_eq!(texts, 3);
    assert!(buf.is_empty());
}
