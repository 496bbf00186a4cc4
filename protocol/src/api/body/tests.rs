//! Tests of the trigger body parsers: every rule, the SDKs' shapes, and inputs that must not
//! panic.

use super::*;

fn event(json: &str) -> Result<TriggerEvent, ApiError> {
    parse_event(&mut json.as_bytes().to_vec(), &Limits::default())
}

fn batch(json: &str) -> Result<Vec<TriggerEvent>, ApiError> {
    parse_batch(&mut json.as_bytes().to_vec(), &Limits::default())
}

fn names(e: &TriggerEvent) -> Vec<&str> {
    e.channels.iter().map(ChannelName::as_str).collect()
}

#[test]
fn the_documented_body_parses() {
    let e =
        event(r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#).unwrap();
    assert_eq!(e.name, "foo");
    assert_eq!(e.data, r#"{"some":"data"}"#);
    assert_eq!(names(&e), ["project-3"]);
    assert!(e.socket_id.is_none());
    assert!(e.info.is_empty());
}

#[test]
fn laravel_single_channel_form_with_socket_id_and_info() {
    let e = event(
        r#"{"name":"App\\Events\\Sent","data":"{\"id\":1}","channel":"private-chat.1",
            "socket_id":"1234.5678","info":"user_count, subscription_count","extra":[1]}"#,
    )
    .unwrap();
    assert_eq!(e.name, r"App\Events\Sent");
    assert_eq!(names(&e), ["private-chat.1"]);
    assert_eq!(e.socket_id.unwrap().to_string(), "1234.5678");
    assert_eq!(
        e.info,
        Info {
            user_count: true,
            subscription_count: true,
            cache: false
        }
    );
    assert!(format!("{e:?}").contains("private-chat.1"));
}

#[test]
fn null_socket_id_and_info_mean_absent() {
    let e = event(r#"{"name":"a","data":"","channel":"c","socket_id":null,"info":null}"#).unwrap();
    assert!(e.socket_id.is_none());
    assert!(e.info.is_empty());
}

#[test]
fn channel_and_channels_rules() {
    let e = |j| event(j).unwrap_err();
    assert_eq!(
        e(r#"{"name":"a","data":"","channel":"x","channels":["y"]}"#),
        ApiError::ChannelAndChannels
    );
    assert_eq!(e(r#"{"name":"a","data":""}"#), ApiError::NoChannel);
    assert_eq!(
        e(r#"{"name":"a","data":"","channels":[]}"#),
        ApiError::EmptyChannels
    );
    let wrong = e(r#"{"name":"a","data":"","channels":"x"}"#);
    assert!(matches!(
        wrong,
        ApiError::WrongType {
            field: "channels",
            ..
        }
    ));
    let wrong = e(r#"{"name":"a","data":"","channels":["x",1]}"#);
    assert!(matches!(
        wrong,
        ApiError::WrongType {
            field: "channels",
            ..
        }
    ));
    let wrong = e(r#"{"name":"a","data":"","channel":["x"]}"#);
    assert!(matches!(
        wrong,
        ApiError::WrongType {
            field: "channel",
            ..
        }
    ));
}

#[test]
fn at_most_the_channel_limit_and_duplicates_collapse() {
    let list = |n: usize| {
        (0..n)
            .map(|i| format!("\"c{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ok = event(&format!(
        r#"{{"name":"a","data":"","channels":[{}]}}"#,
        list(100)
    ))
    .unwrap();
    assert_eq!(ok.channels.len(), 100);
    let err = event(&format!(
        r#"{{"name":"a","data":"","channels":[{}]}}"#,
        list(101)
    ))
    .unwrap_err();
    assert_eq!(
        err,
        ApiError::TooManyChannels {
            count: 101,
            max: 100
        }
    );
    assert_eq!(err.status(), 400);
    let dup = event(r#"{"name":"a","data":"","channels":["b","a","b"]}"#).unwrap();
    assert_eq!(names(&dup), ["b", "a"]);
}

#[test]
fn invalid_channel_names_say_which_and_why() {
    let err = event(r#"{"name":"a","data":"","channels":["ok","bad channel!"]}"#).unwrap_err();
    let ApiError::InvalidChannel { channel, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(channel, "bad channel!");
    assert!(!reason.is_empty());
    assert_eq!(err.status(), 400);
    let long = "c".repeat(165);
    let err = event(&format!(r#"{{"name":"a","data":"","channel":"{long}"}}"#)).unwrap_err();
    assert!(matches!(err, ApiError::InvalidChannel { .. }), "{err:?}");
    assert!(matches!(
        event(r#"{"name":"a","data":"","channel":""}"#),
        Err(ApiError::InvalidChannel { .. })
    ));
}

#[test]
fn data_must_be_a_string_within_the_limit() {
    for data in ["{}", "[]", "1", "null", "true"] {
        let err = event(&format!(r#"{{"name":"a","channel":"c","data":{data}}}"#)).unwrap_err();
        assert!(
            matches!(err, ApiError::WrongType { field: "data", .. }),
            "{data}: {err:?}"
        );
        assert_eq!(err.status(), 400);
    }
    let at_limit = "x".repeat(10_240);
    event(&format!(
        r#"{{"name":"a","channel":"c","data":"{at_limit}"}}"#
    ))
    .unwrap();
    let err = event(&format!(
        r#"{{"name":"a","channel":"c","data":"{at_limit}x"}}"#
    ))
    .unwrap_err();
    assert_eq!(
        err,
        ApiError::DataTooLarge {
            size: 10_241,
            max: 10_240
        }
    );
    assert_eq!(err.status(), 413);
    // The limit applies to the string, after JSON unescaping.
    let escaped = "\\\"".repeat(6_000);
    event(&format!(
        r#"{{"name":"a","channel":"c","data":"{escaped}"}}"#
    ))
    .unwrap();
    assert_eq!(
        event(r#"{"name":"a","channel":"c"}"#).unwrap_err(),
        ApiError::MissingField("data")
    );
}

#[test]
fn event_names_are_required_non_empty_and_bounded() {
    assert_eq!(
        event(r#"{"data":"","channel":"c"}"#).unwrap_err(),
        ApiError::MissingField("name")
    );
    assert_eq!(
        event(r#"{"name":"","data":"","channel":"c"}"#).unwrap_err(),
        ApiError::EmptyEventName
    );
    let err = event(r#"{"name":5,"data":"","channel":"c"}"#).unwrap_err();
    assert!(matches!(err, ApiError::WrongType { field: "name", .. }));
    let n = "é".repeat(200);
    event(&format!(r#"{{"name":"{n}","data":"","channel":"c"}}"#)).unwrap();
    let err = event(&format!(r#"{{"name":"{n}x","data":"","channel":"c"}}"#)).unwrap_err();
    assert_eq!(err, ApiError::EventNameTooLong { len: 201, max: 200 });
}

#[test]
fn socket_ids_and_info_are_validated() {
    for sid in [
        "\"1.\"",
        "\"abc\"",
        "\"1.2.3\"",
        "\"-1.2\"",
        "\"\"",
        "\"99999999999999999999999.1\"",
    ] {
        let err = event(&format!(
            r#"{{"name":"a","data":"","channel":"c","socket_id":{sid}}}"#
        ))
        .unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidSocketId(_)),
            "{sid}: {err:?}"
        );
        assert_eq!(err.status(), 400);
    }
    let err = event(r#"{"name":"a","data":"","channel":"c","socket_id":12.5}"#).unwrap_err();
    assert!(matches!(
        err,
        ApiError::WrongType {
            field: "socket_id",
            ..
        }
    ));
    let err =
        event(r#"{"name":"a","data":"","channel":"c","info":"user_count,members"}"#).unwrap_err();
    assert_eq!(err, ApiError::UnknownInfo("members".into()));
    let err = event(r#"{"name":"a","data":"","channel":"c","info":["user_count"]}"#).unwrap_err();
    assert!(matches!(err, ApiError::WrongType { field: "info", .. }));
}

#[test]
fn info_lists() {
    assert!(Info::parse("").unwrap().is_empty());
    assert_eq!(
        Info::parse("cache,").unwrap(),
        Info {
            cache: true,
            ..Info::default()
        }
    );
    assert!(
        Info::parse("user_count,,subscription_count")
            .unwrap()
            .subscription_count
    );
    assert!(Info::parse("USER_COUNT").is_err());
}

#[test]
fn malformed_bodies_are_400() {
    for body in ["", "{", "nope", "[]", "\"s\"", "null", "{\"name\":\"a\",}"] {
        let err = event(body).unwrap_err();
        assert!(
            matches!(err, ApiError::InvalidJson(_) | ApiError::NotAnObject),
            "{body:?}: {err:?}"
        );
        assert_eq!(err.status(), 400);
    }
    let err = event(r#"{"name":"a","name":"b","data":"","channel":"c"}"#).unwrap_err();
    assert_eq!(err, ApiError::DuplicateField("name".into()));
}

#[test]
fn batches() {
    let b = batch(
        r#"{"batch":[{"name":"a","data":"1","channel":"x"},
                     {"name":"b","data":"2","channels":["y"],"info":"subscription_count"}]}"#,
    )
    .unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(names(&b[0]), ["x"]);
    assert_eq!(names(&b[1]), ["y"]);
    assert!(b[1].info.subscription_count);
    assert!(batch(r#"{"batch":[]}"#).unwrap().is_empty());
}

#[test]
fn batch_rules() {
    let item = r#"{"name":"a","data":"","channel":"c"}"#;
    let ten = [item; 10].join(",");
    assert_eq!(batch(&format!(r#"{{"batch":[{ten}]}}"#)).unwrap().len(), 10);
    let err = batch(&format!(r#"{{"batch":[{ten},{item}]}}"#)).unwrap_err();
    assert_eq!(err, ApiError::BatchTooLarge { count: 11, max: 10 });
    assert_eq!(batch("{}").unwrap_err(), ApiError::MissingField("batch"));
    assert!(matches!(
        batch(r#"{"batch":{}}"#),
        Err(ApiError::WrongType { field: "batch", .. })
    ));
    assert_eq!(
        batch(r#"{"batch":[],"batch":[]}"#).unwrap_err(),
        ApiError::DuplicateField("batch".into())
    );

    let in_batch = |json: &str| match batch(json).unwrap_err() {
        ApiError::InBatch { index, error } => (index, *error),
        other => panic!("{other:?}"),
    };
    let two = r#"{"batch":[{"name":"a","data":"","channel":"c"},
                          {"name":"a","data":"","channels":["c","d"]}]}"#;
    assert_eq!(in_batch(two), (1, ApiError::BatchItemChannels(2)));
    assert_eq!(in_batch(r#"{"batch":[1]}"#), (0, ApiError::NotAnObject));
    let big = "x".repeat(10_241);
    let (index, error) = in_batch(&format!(
        r#"{{"batch":[{item},{item},{{"name":"a","channel":"c","data":"{big}"}}]}}"#
    ));
    assert_eq!((index, error.status()), (2, 413));
}

#[test]
fn legacy_events_take_name_and_socket_id_from_the_query_and_data_from_the_body() {
    let limits = Limits::default();
    let q = Query::parse("name=my-event&socket_id=1.2&auth_key=k").unwrap();
    let e = parse_legacy_event("news", &q, br#"{"a":1}"#, &limits).unwrap();
    assert_eq!(
        (e.name.as_str(), e.data.as_str()),
        ("my-event", r#"{"a":1}"#)
    );
    assert_eq!(names(&e), ["news"]);
    assert_eq!(e.socket_id.unwrap().to_string(), "1.2");
    let no_name = Query::parse("socket_id=1.2").unwrap();
    assert_eq!(
        parse_legacy_event("news", &no_name, b"", &limits).unwrap_err(),
        ApiError::MissingField("name")
    );
    let err = parse_legacy_event("news", &q, b"\xff", &limits).unwrap_err();
    assert!(matches!(err, ApiError::WrongType { field: "data", .. }));
    let err = parse_legacy_event("bad name", &q, b"", &limits).unwrap_err();
    assert!(matches!(err, ApiError::InvalidChannel { .. }));
    let err = parse_legacy_event("news", &q, &[b'x'; 10_241], &limits).unwrap_err();
    assert_eq!(err.status(), 413);
}

#[test]
fn never_panics_on_fragments_of_valid_bodies() {
    let valid = r#"{"batch":[{"name":"e","data":"{\"a\":[1,2]}","channels":["c","d"],"socket_id":"1.2","info":"user_count"}]}"#;
    for end in 0..=valid.len() {
        for start in 0..end.min(12) {
            let piece = &valid.as_bytes()[start..end];
            let _ = parse_event(&mut piece.to_vec(), &Limits::default());
            let _ = parse_batch(&mut piece.to_vec(), &Limits::default());
        }
    }
    for bytes in [
        &b"\xff\xfe"[..],
        b"{\"name\":\"\xff\"}",
        &[0u8; 64],
        &[b'['; 4096],
    ] {
        let _ = parse_event(&mut bytes.to_vec(), &Limits::default());
        let _ = parse_batch(&mut bytes.to_vec(), &Limits::default());
    }
}

#[test]
fn bodies_sent_by_the_sdks_parse() {
    // Captured from the Node `pusher` 5.3.4 and Python `pusher` 3.3.4 packages.
    let node = event(r#"{"name":"ev","data":"{\"a\":\"b c\"}","channels":["presence-room"],"socket_id":"123.456","info":"user_count,subscription_count"}"#).unwrap();
    let python = event(r#"{"name": "ev", "channels": ["presence-room"], "data": "{\"a\": \"b c\"}", "socket_id": "123.456"}"#).unwrap();
    assert_eq!(node.data, r#"{"a":"b c"}"#);
    assert_eq!(python.data, r#"{"a": "b c"}"#);
    for e in [&node, &python] {
        assert_eq!((e.name.as_str(), names(e)), ("ev", vec!["presence-room"]));
        assert_eq!(e.socket_id.as_ref().unwrap().to_string(), "123.456");
    }
    assert!(node.info.user_count && node.info.subscription_count);
    assert_eq!(batch(r#"{"batch":[{"channel":"x","name":"e","data":"{\"k\":1}"},{"channel":"y","name":"e","data":"s","info":"subscription_count"}]}"#).unwrap().len(), 2);
    assert_eq!(
        batch(r#"{"batch": [{"channel": "x", "name": "e", "data": "{\"k\": 1}"}]}"#).unwrap()[0]
            .data,
        r#"{"k": 1}"#
    );
}
