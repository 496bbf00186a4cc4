//! Tests of request authentication, starting from the worked example of the Pusher HTTP API
//! reference.

use super::*;

// The worked example of the Pusher HTTP API reference (pusher/docs
// library_auth_reference/rest-api.md), recomputed independently.
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
const TS: u64 = 1353088179;
const MD5: &str = "ec365a775a4cd0599faeb73354201b6f";
const SIG: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
const CREDS: Credentials<'static> = Credentials {
    key: KEY,
    secret: SECRET,
};

fn check(method: &str, path: &str, raw_query: &str, body: &str, now: u64) -> Result<(), ApiError> {
    let q = Query::parse(raw_query)?;
    verify(
        method,
        path,
        &q,
        body.as_bytes(),
        CREDS,
        now,
        &Limits::default(),
    )
}

fn vector_query() -> String {
    format!(
        "auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={MD5}&auth_signature={SIG}"
    )
}

#[test]
fn the_documented_vector_verifies() {
    assert_eq!(md5_hex(BODY.as_bytes()), MD5);
    let q = Query::parse(&vector_query()).unwrap();
    let sts = string_to_sign("POST", "/apps/3/events", q.iter());
    assert_eq!(
        sts,
        format!(
            "POST\n/apps/3/events\nauth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={MD5}"
        )
    );
    assert_eq!(hex::encode(mac(SECRET, &sts)), SIG);
    check("POST", "/apps/3/events", &vector_query(), BODY, TS).unwrap();
}

#[test]
fn sign_query_reproduces_the_documented_request() {
    let params = [
        ("body_md5", MD5),
        ("auth_version", "1.0"),
        ("auth_key", KEY),
        ("auth_timestamp", "1353088179"),
    ];
    assert_eq!(
        sign_query("POST", "/apps/3/events", &params, SECRET),
        vector_query()
    );
    let q = signed_query("POST", "/apps/3/events", BODY.as_bytes(), CREDS, TS, &[]);
    assert_eq!(q, vector_query());
}

#[test]
fn parameter_order_in_the_request_does_not_matter() {
    let q = format!(
        "auth_signature={SIG}&body_md5={MD5}&auth_version=1.0&auth_timestamp={TS}&auth_key={KEY}"
    );
    check("POST", "/apps/3/events", &q, BODY, TS).unwrap();
}

#[test]
fn keys_are_lower_cased_and_values_unescaped_in_the_string_to_sign() {
    // The reference's own example of the rule.
    let params = [("auth_key", "foo"), ("Name", "Something else")];
    assert_eq!(
        string_to_sign("GET", "/p", params.into_iter()),
        "GET\n/p\nauth_key=foo&name=Something else"
    );
    // auth_signature is never part of what is signed, in any case.
    let params = [("b", "2"), ("AUTH_SIGNATURE", "x"), ("a", "1")];
    assert_eq!(
        string_to_sign("GET", "/p", params.into_iter()),
        "GET\n/p\na=1&b=2"
    );
}

#[test]
fn percent_encoded_values_verify_against_the_raw_value_signature() {
    // Signed over the raw value, sent encoded (what PHP's http_build_query does).
    let path = "/apps/3/channels/presence-room";
    let params = [
        ("auth_key", KEY),
        ("auth_timestamp", "1353088179"),
        ("auth_version", "1.0"),
        ("info", "user_count,subscription_count"),
    ];
    let sts = string_to_sign("GET", path, params.into_iter());
    let sig = hex::encode(mac(SECRET, &sts));
    let raw = format!(
        "auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0\
         &info=user_count%2Csubscription_count&auth_signature={sig}"
    );
    check("GET", path, &raw, "", TS).unwrap();
    // The same request with the value sent raw (what the Node and Python SDKs do).
    let raw = raw.replace("%2C", ",");
    check("GET", path, &raw, "", TS).unwrap();
    // And sign_query's own encoding.
    let q = sign_query("GET", path, &params, SECRET);
    assert!(q.contains("info=user_count%2Csubscription_count&"), "{q}");
    check("GET", path, &q, "", TS).unwrap();
}

#[test]
fn round_trip_with_extra_parameters_and_spaces() {
    let extra = [("filter_by_prefix", "presence-"), ("Note", "a b+c&d=e")];
    let q = signed_query("GET", "/apps/3/channels", b"", CREDS, TS, &extra);
    check("GET", "/apps/3/channels", &q, "", TS + 5).unwrap();
    // Any change to what was signed fails.
    assert!(check("POST", "/apps/3/channels", &q, "", TS).is_err());
    assert!(check("GET", "/apps/4/channels", &q, "", TS).is_err());
    let tampered = q.replace("presence-", "private-");
    assert!(matches!(
        check("GET", "/apps/3/channels", &tampered, "", TS),
        Err(ApiError::InvalidSignature { .. })
    ));
}

#[test]
fn python_style_get_with_the_md5_of_the_empty_body_verifies() {
    let empty_md5 = md5_hex(b"");
    assert_eq!(empty_md5, "d41d8cd98f00b204e9800998ecf8427e");
    let params = [
        ("auth_key", KEY),
        ("body_md5", empty_md5.as_str()),
        ("auth_version", "1.0"),
        ("auth_timestamp", "1353088179"),
    ];
    let q = sign_query("GET", "/apps/3/channels", &params, SECRET);
    check("GET", "/apps/3/channels", &q, "", TS).unwrap();
    // A body_md5 on an empty body must still be the MD5 of nothing.
    let params = [
        ("auth_key", KEY),
        ("body_md5", MD5),
        ("auth_version", "1.0"),
        ("auth_timestamp", "1353088179"),
    ];
    let q = sign_query("GET", "/apps/3/channels", &params, SECRET);
    let e = check("GET", "/apps/3/channels", &q, "", TS).unwrap_err();
    assert!(matches!(e, ApiError::BodyMd5Mismatch { .. }), "{e:?}");
}

#[test]
fn node_style_get_without_body_md5_verifies() {
    let q = signed_query("GET", "/apps/3/connections", b"", CREDS, TS, &[]);
    assert!(!q.contains("body_md5"));
    check("GET", "/apps/3/connections", &q, "", TS).unwrap();
}

#[test]
fn the_body_md5_is_recomputed_from_the_body_received() {
    let e = check(
        "POST",
        "/apps/3/events",
        &vector_query(),
        &BODY.replace("foo", "bar"),
        TS,
    )
    .unwrap_err();
    assert!(matches!(e, ApiError::BodyMd5Mismatch { .. }), "{e:?}");
    assert_eq!(e.status(), 401);
    // A body without a body_md5.
    let q = signed_query("POST", "/apps/3/events", b"", CREDS, TS, &[]);
    let e = check("POST", "/apps/3/events", &q, BODY, TS).unwrap_err();
    assert_eq!(e, ApiError::MissingBodyMd5);
}

#[test]
fn timestamps_within_the_skew_pass_and_beyond_it_fail() {
    let q = vector_query();
    for now in [TS - 600, TS, TS + 600] {
        check("POST", "/apps/3/events", &q, BODY, now).unwrap();
    }
    for now in [TS - 601, TS + 601, 0, u64::MAX] {
        let e = check("POST", "/apps/3/events", &q, BODY, now).unwrap_err();
        assert!(matches!(e, ApiError::TimestampExpired { .. }), "{e:?}");
        assert_eq!(e.status(), 401);
    }
}

#[test]
fn malformed_timestamps_are_refused() {
    for ts in [
        "",
        "-1",
        "1.5",
        "+3",
        "1e9",
        "99999999999999999999999",
        "abc",
    ] {
        let q = format!("auth_key={KEY}&auth_timestamp={ts}&auth_version=1.0&auth_signature={SIG}");
        let e = check("GET", "/apps/3/channels", &q, "", TS).unwrap_err();
        assert!(matches!(e, ApiError::InvalidTimestamp(_)), "{ts}: {e:?}");
    }
}

#[test]
fn missing_wrong_or_repeated_auth_parameters_are_refused() {
    let full = vector_query();
    for name in [
        "auth_key",
        "auth_timestamp",
        "auth_version",
        "auth_signature",
    ] {
        let q: Vec<&str> = full.split('&').filter(|p| !p.starts_with(name)).collect();
        let e = check("POST", "/apps/3/events", &q.join("&"), BODY, TS).unwrap_err();
        assert_eq!(e, ApiError::MissingAuthParam(name));
    }
    let e = check(
        "POST",
        "/apps/3/events",
        &format!("{full}&AUTH_KEY={KEY}"),
        BODY,
        TS,
    );
    assert_eq!(e, Err(ApiError::DuplicateAuthParam("auth_key")));
    let e = check(
        "POST",
        "/apps/3/events",
        &format!("{full}&body_md5={MD5}"),
        BODY,
        TS,
    );
    assert_eq!(e, Err(ApiError::DuplicateAuthParam("body_md5")));

    let e = check(
        "POST",
        "/apps/3/events",
        &full.replace(KEY, "other"),
        BODY,
        TS,
    )
    .unwrap_err();
    assert_eq!(e, ApiError::WrongKey("other".into()));
    let e = check(
        "POST",
        "/apps/3/events",
        &full.replace("=1.0", "=2.0"),
        BODY,
        TS,
    )
    .unwrap_err();
    assert_eq!(e, ApiError::UnsupportedAuthVersion("2.0".into()));
}

#[test]
fn the_signature_is_compared_as_hex_in_either_case() {
    let upper = vector_query().replace(SIG, &SIG.to_ascii_uppercase());
    check("POST", "/apps/3/events", &upper, BODY, TS).unwrap();
    for bad in ["", "zz", &SIG[..62], &format!("{SIG}00")] {
        let q = vector_query().replace(SIG, bad);
        let e = check("POST", "/apps/3/events", &q, BODY, TS).unwrap_err();
        assert!(
            matches!(e, ApiError::InvalidSignature { .. }),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn a_failed_signature_never_reveals_the_secret_or_the_expected_digest() {
    let creds = Credentials {
        key: KEY,
        secret: "another-secret",
    };
    let q = Query::parse(&vector_query()).unwrap();
    let e = verify(
        "POST",
        "/apps/3/events",
        &q,
        BODY.as_bytes(),
        creds,
        TS,
        &Limits::default(),
    )
    .unwrap_err();
    let expected = hex::encode(mac(
        "another-secret",
        &string_to_sign("POST", "/apps/3/events", q.iter()),
    ));
    for text in [
        e.to_string(),
        String::from_utf8(e.response(true)).unwrap(),
        format!("{e:?}"),
    ] {
        assert!(!text.contains("another-secret"), "{text}");
        assert!(!text.contains(&expected), "{text}");
        assert!(text.contains("/apps/3/events"), "{text}");
    }
    assert!(!format!("{creds:?}").contains("another-secret"));
}

#[test]
fn an_encoded_path_verifies_whether_the_client_signed_it_encoded_or_decoded() {
    let encoded = "/apps/3/channels/%23server-to-user-7";
    let decoded = "/apps/3/channels/#server-to-user-7";
    for signed in [encoded, decoded] {
        let q = signed_query("GET", signed, b"", CREDS, TS, &[]);
        check("GET", encoded, &q, "", TS).unwrap();
    }
    // The decoded form is only tried for a path that was actually encoded.
    let q = signed_query("GET", encoded, b"", CREDS, TS, &[]);
    assert!(check("GET", decoded, &q, "", TS).is_err());
}

#[test]
fn arbitrary_queries_never_panic() {
    let pieces = [
        "auth_key=",
        KEY,
        "&",
        "auth_signature=",
        SIG,
        "%",
        "auth_timestamp=9",
        "=",
        "é",
    ];
    for a in pieces {
        for b in pieces {
            for c in pieces {
                if let Ok(q) = Query::parse(&format!("{a}{b}{c}")) {
                    let _ = verify("GET", "/%", &q, b"x", CREDS, TS, &Limits::default());
                }
            }
        }
    }
}

/// Requests as sent on the wire by the Pusher server SDKs (captured from the Node `pusher` 5.3.4
/// and Python `pusher` 3.3.4 packages against a local listener, app key `the-key`, secret
/// `the-secret`): method, request target, body.
const SDK_REQUESTS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/apps/3/events?auth_key=the-key&auth_timestamp=1795642164&auth_version=1.0&body_md5=0774d38c159d9875bde83deddd9cd2c1&auth_signature=b411b2269b4f43625d1e11d375798637e812533c625fa8655b9d2a513d2df688",
        r#"{"name":"ev","data":"{\"a\":\"b c\"}","channels":["presence-room"],"socket_id":"123.456","info":"user_count,subscription_count"}"#,
        "Node pusher 5.3.4: trigger with socket_id and info",
    ),
    (
        "GET",
        "/apps/3/channels/presence-room?auth_key=the-key&auth_timestamp=1795642164&auth_version=1.0&info=user_count,subscription_count&auth_signature=02ed5e8035615b11a0481c2437f01f2c5f6d662303bd0f1b243939bb99109d93",
        r#""#,
        "Node pusher 5.3.4: channel info, `info` sent with a raw comma",
    ),
    (
        "POST",
        "/apps/3/users/42/terminate_connections?auth_key=the-key&auth_timestamp=1795642164&auth_version=1.0&body_md5=99914b932bd37a50b983c5e7c90ae93b&auth_signature=f60219430445bfdcafc8b8812f818f63b20d359d64df99807052007f77c0c37c",
        r#"{}"#,
        "Node pusher 5.3.4: terminate_connections, body `{}`",
    ),
    (
        "POST",
        "/apps/3/events?auth_key=the-key&auth_signature=49a29917b841e1c75105f442d69328876dbc2d1ec410b493870c963f901507a8&auth_timestamp=1795642165&auth_version=1.0&body_md5=56f815a169b8a96f884713bc94f4c051",
        r#"{"name": "ev", "channels": ["presence-room"], "data": "{\"a\": \"b c\"}", "socket_id": "123.456"}"#,
        "Python pusher 3.3.4: trigger, JSON with spaces, query in its own order",
    ),
    (
        "GET",
        "/apps/3/channels?auth_key=the-key&auth_signature=8d2ca1d831fb3f7b5ad9f2ed030fff52db94c4ff3720c511a1bc36edcbc061fe&auth_timestamp=1795642165&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&filter_by_prefix=presence-&info=user_count",
        r#""#,
        "Python pusher 3.3.4: GET signing the MD5 of the empty body",
    ),
];

#[test]
fn requests_signed_by_the_sdks_verify() {
    let creds = Credentials {
        key: "the-key",
        secret: "the-secret",
    };
    for &(method, target, body, what) in SDK_REQUESTS {
        let (path, raw) = target.split_once('?').unwrap();
        let q = Query::parse(raw).unwrap();
        let ts: u64 = q.get("auth_timestamp").unwrap().parse().unwrap();
        let limits = Limits::default();
        verify(method, path, &q, body.as_bytes(), creds, ts + 30, &limits).expect(what);
        let e = verify(method, path, &q, b"{ }", creds, ts, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                ApiError::BodyMd5Mismatch { .. } | ApiError::MissingBodyMd5
            ),
            "{what}"
        );
    }
}
