//! The layers, the validation and the redaction of the configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ringcast-cfg-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn defaults_generate_an_app() {
    let dir = tmpdir("defaults");
    let cfg = Config::load(&Overrides::default(), &dir, &HashMap::new()).unwrap();
    assert!(cfg.generated);
    assert_eq!(cfg.port, 8080);
    assert_eq!(cfg.host, "0.0.0.0");
    assert_eq!(cfg.apps.len(), 1);
    assert_eq!(cfg.apps[0].key.len(), 20);
    assert!(cfg.laravel_env_block().contains("REVERB_APP_KEY="));
}

#[test]
fn layers_apply_in_order() {
    let dir = tmpdir("layers");
    let file = dir.join("ringcast.toml");
    std::fs::write(
        &file,
        "port = 7000\nworkers = 3\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nactivity_timeout = 50\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "REVERB_SERVER_PORT=7001\nREVERB_APP_SECRET=fromdotenv\nREVERB_SERVER_PATH=ws/\n",
    )
    .unwrap();
    let flags = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        workers: Some(2),
        ..Overrides::default()
    };
    let cfg = Config::load(
        &flags,
        &dir,
        &env(&[
            ("REVERB_SERVER_PORT", "7002"),
            ("REVERB_APP_MAX_CONNECTIONS", "5"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.port, 7002, "environment beats .env and file");
    assert_eq!(cfg.workers, 2, "flags beat everything");
    assert_eq!(cfg.apps[0].secret, "fromdotenv");
    assert_eq!(cfg.apps[0].activity_timeout, 50);
    assert_eq!(cfg.apps[0].max_connections, Some(5));
    assert_eq!(cfg.path_prefix, "/ws");
    assert!(!cfg.generated);
}

#[test]
fn mistakes_say_what_to_fix() {
    let dir = tmpdir("mistakes");
    let e = Config::load(
        &Overrides::default(),
        &dir,
        &env(&[("REVERB_SERVER_PORT", "99999")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("REVERB_SERVER_PORT"), "{e}");
    let e = Config::load(
        &Overrides::default(),
        &dir,
        &env(&[("REVERB_APP_ID", "1"), ("REVERB_APP_KEY", "k")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("REVERB_APP_SECRET"), "{e}");
    let flags = Overrides {
        config_file: Some("/nonexistent/ringcast.toml".into()),
        ..Overrides::default()
    };
    let e = Config::load(&flags, &dir, &HashMap::new()).unwrap_err();
    assert!(e.to_string().contains("cannot read config file"), "{e}");
}

/// Loads a config file of `top` (server keys) and one app with `app` (its keys).
fn load_file(name: &str, top: &str, app: &str) -> Result<Config, ConfigError> {
    let dir = tmpdir(name);
    let file = dir.join("ringcast.toml");
    std::fs::write(
        &file,
        format!("{top}\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n{app}\n"),
    )
    .unwrap();
    let flags = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    Config::load(&flags, &dir, &HashMap::new())
}

#[test]
fn every_numeric_setting_refuses_zero_and_nonsense_naming_itself() {
    // (server keys, app keys, the setting the one-line error must name)
    let cases = [
        ("workers = 0", "", "workers"),
        ("workers = 100000", "", "workers"),
        ("shutdown_timeout = 0", "", "shutdown_timeout"),
        (
            "shutdown_timeout = 9223372036854775807",
            "",
            "shutdown_timeout",
        ),
        ("handshake_timeout_ms = 0", "", "handshake_timeout_ms"),
        (
            "handshake_timeout_ms = 9223372036854775807",
            "",
            "handshake_timeout_ms",
        ),
        ("write_timeout_ms = 0", "", "write_timeout_ms"),
        (
            "write_timeout_ms = 9223372036854775807",
            "",
            "write_timeout_ms",
        ),
        ("max_outbound_bytes = 0", "", "max_outbound_bytes"),
        ("max_mesh_bytes = 0", "", "max_mesh_bytes"),
        ("send_buffer_bytes = 4096", "", "send_buffer_bytes"),
        ("send_buffer_bytes = 1073741824", "", "send_buffer_bytes"),
        ("max_request_size = 0", "", "max_request_size"),
        ("max_request_head = 0", "", "max_request_head"),
        ("max_request_head = 100", "", "max_request_head"),
        ("max_headers = 0", "", "max_headers"),
        ("max_event_data = 0", "", "max_event_data"),
        ("max_channels_per_event = 0", "", "max_channels_per_event"),
        ("max_batch_events = 0", "", "max_batch_events"),
        ("max_channel_name_len = 0", "", "max_channel_name_len"),
        ("max_event_name_len = 0", "", "max_event_name_len"),
        (
            "max_channels_per_connection = 0",
            "",
            "max_channels_per_connection",
        ),
        ("max_presence_members = 0", "", "max_presence_members"),
        ("max_user_info_bytes = 0", "", "max_user_info_bytes"),
        ("max_user_id_len = 0", "", "max_user_id_len"),
        ("max_watchlist = 0", "", "max_watchlist"),
        (
            "client_events_per_second = 0",
            "",
            "client_events_per_second",
        ),
        (
            "auth_timestamp_skew_secs = 0",
            "",
            "auth_timestamp_skew_secs",
        ),
        ("", "activity_timeout = 0", "activity_timeout"),
        ("", "activity_timeout = 4000000", "activity_timeout"),
        ("", "ping_interval = 0", "ping_interval"),
        ("", "pong_timeout = 0", "pong_timeout"),
        ("", "max_message_size = 0", "max_message_size"),
        ("", "max_connections = 0", "max_connections"),
        ("", "cache_ttl = 0", "cache_ttl"),
        ("", "cache_ttl = 9223372036854775807", "cache_ttl"),
    ];
    let mut wrong = Vec::new();
    for (i, (top, app, setting)) in cases.into_iter().enumerate() {
        match load_file(&format!("bad-{i}"), top, app) {
            Err(e @ ConfigError::BadValue { .. })
                if e.to_string().starts_with(setting) && !e.to_string().contains('\n') => {}
            Err(e) => wrong.push(format!("{top}{app}: {e}")),
            Ok(_) => wrong.push(format!("{top}{app}: accepted")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused by name:\n{}",
        wrong.join("\n")
    );
    let e = Config::load(
        &Overrides::default(),
        &tmpdir("bad-env"),
        &env(&[
            ("REVERB_APP_ID", "1"),
            ("REVERB_APP_KEY", "k"),
            ("REVERB_APP_SECRET", "s"),
            ("REVERB_APP_PONG_TIMEOUT", "0"),
        ]),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("REVERB_APP_PONG_TIMEOUT"),
        "an environment setting is named by its variable too: {e}"
    );
    let e = load_file("bad-type", "max_headers = \"many\"", "").unwrap_err();
    assert!(
        e.to_string().contains("line 1: max_headers = \"many\""),
        "a value of the wrong type is named by its line: {e}"
    );
    load_file("good", "", "").expect("the defaults are valid");
}

#[test]
fn every_limit_is_a_toml_key() {
    let top = "max_request_head = 4001\nmax_headers = 40\nmax_request_size = 100001\n\
        max_event_data = 5001\nmax_channels_per_event = 51\nmax_batch_events = 11\n\
        max_channel_name_len = 181\nmax_event_name_len = 201\n\
        max_channels_per_connection = 501\nmax_presence_members = 101\n\
        max_user_info_bytes = 2001\nmax_user_id_len = 129\nmax_watchlist = 61\n\
        client_events_per_second = 21\nauth_timestamp_skew_secs = 301\n\
        max_outbound_bytes = 3000001\nmax_mesh_bytes = 5000001\nsend_buffer_bytes = 32768\n\
        handshake_timeout_ms = 7001\n\
        write_timeout_ms = 6001";
    let cfg = load_file("limits", top, "max_message_size = 20001").unwrap();
    let expected = Limits {
        max_request_head: 4001,
        max_headers: 40,
        max_request_body: 100_001,
        max_event_data: 5001,
        max_message_size: 20_001,
        max_frame_size: 20_001,
        max_channels_per_event: 51,
        max_batch_events: 11,
        max_channel_name_len: 181,
        max_event_name_len: 201,
        max_channels_per_connection: 501,
        max_presence_members: 101,
        max_user_info_bytes: 2001,
        max_user_id_len: 129,
        max_watchlist: 61,
        client_events_per_second: 21,
        auth_timestamp_skew_secs: 301,
        max_outbound_bytes: 3_000_001,
        handshake_timeout_ms: 7001,
        max_mesh_bytes: 5_000_001,
        send_buffer_bytes: 32768,
    };
    // Every value above differs from its default, so each key is seen to arrive.
    assert_eq!(cfg.limits, expected);
    assert_eq!(cfg.write_timeout, Duration::from_millis(6001));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let dir = tmpdir("redact");
    let secret = "s3cret-that-must-not-leak";
    let cfg = Config::load(
        &Overrides::default(),
        &dir,
        &env(&[
            ("REVERB_APP_ID", "1"),
            ("REVERB_APP_KEY", "k"),
            ("REVERB_APP_SECRET", secret),
        ]),
    )
    .unwrap();
    let apps = crate::app::Apps::new(&cfg.apps);
    let app = apps.by_key("k").unwrap();
    for shown in [
        format!("{cfg:?}"),
        format!("{cfg:#?}"),
        format!("{:?}", cfg.apps[0]),
        format!("{app:?}"),
        format!("{apps:?}"),
    ] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(
            shown.contains("key: \"k\""),
            "the rest is still shown: {shown}"
        );
    }
}

#[test]
fn the_dashboard_is_off_unless_a_layer_turns_it_on() {
    let dir = tmpdir("dashboard");
    let load = |flags: &Overrides, vars: &[(&str, &str)]| Config::load(flags, &dir, &env(vars));
    assert!(!load(&Overrides::default(), &[]).unwrap().dashboard);
    let flag = Overrides {
        dashboard: true,
        ..Overrides::default()
    };
    assert!(load(&flag, &[]).unwrap().dashboard);
    for on in ["true", "1", "yes", "ON"] {
        let cfg = load(&Overrides::default(), &[("RINGCAST_DASHBOARD", on)]).unwrap();
        assert!(cfg.dashboard, "RINGCAST_DASHBOARD={on}");
    }
    let off = load(&Overrides::default(), &[("RINGCAST_DASHBOARD", "false")]).unwrap();
    assert!(!off.dashboard);
    let e = load(&Overrides::default(), &[("RINGCAST_DASHBOARD", "maybe")]).unwrap_err();
    assert!(e.to_string().contains("RINGCAST_DASHBOARD"), "{e}");
    let file = dir.join("ringcast.toml");
    std::fs::write(&file, "dashboard = true\n").unwrap();
    let from_file = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    assert!(load(&from_file, &[]).unwrap().dashboard);
    let env_wins = load(&from_file, &[("RINGCAST_DASHBOARD", "0")]).unwrap();
    assert!(!env_wins.dashboard, "the environment beats the file");
}

/// An app with a webhook of every event type, and nothing else: no `subscription_count`
/// setting beside the webhook's.
const EVERY_EVENT_EXAMPLE: &str = r#"[[apps]]
id = "1001"
key = "app-key"
secret = "app-secret"

[[apps.webhooks]]
url = "http://127.0.0.1:9000/pusher/webhook"
event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss", "subscription_count"]
"#;

#[test]
fn a_webhook_of_every_event_type_needs_no_other_setting() {
    let dir = tmpdir("every-event");
    let file = dir.join("ringcast.toml");
    std::fs::write(&file, EVERY_EVENT_EXAMPLE).unwrap();
    let flags = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    let cfg = Config::load(&flags, &dir, &HashMap::new()).unwrap();
    assert_eq!(cfg.apps.len(), 1);
    let app = &cfg.apps[0];
    assert_eq!(
        (app.id.as_str(), app.key.as_str(), app.secret.as_str()),
        ("1001", "app-key", "app-secret")
    );
    assert!(
        !app.subscription_count,
        "subscribers get no count events unless asked"
    );
    assert_eq!(app.webhooks.len(), 1);
    assert_eq!(app.webhooks[0].url, "http://127.0.0.1:9000/pusher/webhook");
    let apps = crate::app::Apps::new(&cfg.apps);
    let a = apps.by_id("1001").unwrap();
    for kind in crate::webhook::EventKind::ALL {
        assert!(a.wants(kind), "{kind:?}");
    }
}

#[test]
fn webhooks_are_an_array_of_tables_under_each_app() {
    // A webhook of every event type, and one with every optional key.
    let app = r#"
[[apps.webhooks]]
url = "http://127.0.0.1:9000/pusher/webhook"
event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event", "cache_miss", "subscription_count"]

[[apps.webhooks]]
url = "https://hooks.example.com/x"
event_types = ["client_event"]
headers = { "X-Token" = "t0k" }
filter = { prefix = "private-", suffix = "-chat" }
batch = { enabled = true, window_ms = 100, max_events = 50 }
timeout_ms = 2000
max_queue = 10
"#;
    let cfg = load_file("webhooks", "", app).unwrap();
    let hooks = &cfg.apps[0].webhooks;
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].event_types.len(), 7);
    assert!(!hooks[0].batch.enabled);
    assert_eq!(hooks[0].timeout_ms, 4000);
    let h = &hooks[1];
    assert_eq!(h.headers.get("X-Token").map(String::as_str), Some("t0k"));
    assert!(h.filter.matches("private-team-chat") && !h.filter.matches("private-team"));
    assert_eq!(
        (h.batch.enabled, h.batch.window_ms, h.batch.max_events),
        (true, 100, 50)
    );
    assert_eq!((h.timeout_ms, h.max_queue), (2000, 10));
    let shown = format!("{:?}", cfg.apps[0]);
    assert!(
        shown.contains("X-Token") && !shown.contains("t0k"),
        "{shown}"
    );
    let apps = crate::app::Apps::new(&cfg.apps);
    let a = apps.by_id("1").unwrap();
    assert!(a.wants(crate::webhook::EventKind::CacheMiss));
}

#[test]
fn webhook_mistakes_are_one_line_naming_the_setting() {
    let cases = [
        (
            "url = \"ftp://x/y\"\nevent_types = [\"cache_miss\"]",
            "webhooks[0].url of app \"1\" must be an http:// or https:// URL with a host, got \"ftp://x/y\"",
        ),
        (
            "url = \"http://h/\"\nevent_types = [\"channel_vacate\"]",
            "webhooks[0].event_types of app \"1\" must be one of channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, subscription_count, got \"channel_vacate\"",
        ),
        (
            "url = \"http://h/\"\nevent_types = []",
            "webhooks[0].event_types of app \"1\" must be at least one of",
        ),
        (
            "url = \"http://h/\"\nevent_types = [\"cache_miss\"]\ntimeout_ms = 0",
            "webhooks[0].timeout_ms of app \"1\"",
        ),
        (
            "url = \"http://h/\"\nevent_types = [\"cache_miss\"]\nbatch = { window_ms = 0 }",
            "webhooks[0].batch.window_ms",
        ),
        (
            "url = \"http://h/\"\nevent_types = [\"cache_miss\"]\nheaders = { \"Content-Type\" = \"x\" }",
            "webhooks[0].headers",
        ),
    ];
    for (i, (hook, want)) in cases.into_iter().enumerate() {
        let e = load_file(
            &format!("hook-{i}"),
            "",
            &format!("[[apps.webhooks]]\n{hook}"),
        )
        .unwrap_err();
        let line = e.to_string();
        assert!(line.starts_with(want), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    let e = load_file(
        "hook-key",
        "",
        "[[apps.webhooks]]\nurl = \"http://h/\"\nevent = [\"x\"]",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("event"),
        "an unknown key is named: {e}"
    );
}

#[test]
fn the_environment_gives_the_first_app_one_webhook() {
    let dir = tmpdir("hook-env");
    let base = [
        ("REVERB_APP_ID", "1"),
        ("REVERB_APP_KEY", "k"),
        ("REVERB_APP_SECRET", "s"),
    ];
    let load = |extra: &[(&str, &str)]| {
        let mut vars: Vec<(&str, &str)> = base.to_vec();
        vars.extend_from_slice(extra);
        Config::load(&Overrides::default(), &dir, &env(&vars))
    };
    let cfg = load(&[
        ("RINGCAST_WEBHOOK_URL", "https://app.test/pusher/webhook"),
        ("RINGCAST_WEBHOOK_EVENTS", "member_added,member_removed"),
    ])
    .unwrap();
    let h = &cfg.apps[0].webhooks;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].url, "https://app.test/pusher/webhook");
    assert_eq!(h[0].event_types, ["member_added", "member_removed"]);
    let defaults = load(&[("RINGCAST_WEBHOOK_URL", "http://h/")]).unwrap();
    assert_eq!(defaults.apps[0].webhooks[0].event_types.len(), 4);
    assert!(
        load(&[("RINGCAST_WEBHOOK_URL", "")]).unwrap().apps[0]
            .webhooks
            .is_empty()
    );
    let e = load(&[("RINGCAST_WEBHOOK_URL", "nope")]).unwrap_err();
    assert!(e.to_string().contains("(RINGCAST_WEBHOOK_URL)"), "{e}");
    let e = load(&[
        ("RINGCAST_WEBHOOK_URL", "http://h/"),
        ("RINGCAST_WEBHOOK_EVENTS", "member_added,bogus"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("(RINGCAST_WEBHOOK_EVENTS)"), "{e}");
    assert!(e.to_string().contains("\"bogus\""), "{e}");
}

#[test]
fn metrics_are_off_unless_an_address_is_given_and_never_share_the_public_port() {
    let dir = tmpdir("metrics");
    let load = |flags: &Overrides, vars: &[(&str, &str)]| Config::load(flags, &dir, &env(vars));
    let metrics = |c: Config| c.operations.metrics_addr.map(|a| a.to_string());
    assert_eq!(metrics(load(&Overrides::default(), &[]).unwrap()), None);
    let file = dir.join("ringcast.toml");
    std::fs::write(&file, "metrics_addr = \"127.0.0.1:9601\"\n").unwrap();
    let from_file = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    assert_eq!(
        metrics(load(&from_file, &[]).unwrap()).as_deref(),
        Some("127.0.0.1:9601")
    );
    let env_wins = load(&from_file, &[("RINGCAST_METRICS_ADDR", "[::1]:9700")]).unwrap();
    assert_eq!(metrics(env_wins).as_deref(), Some("[::1]:9700"));
    let emptied = load(&from_file, &[("RINGCAST_METRICS_ADDR", "")]).unwrap();
    assert_eq!(metrics(emptied), None, "an empty value turns metrics off");
    let flag = Overrides {
        operations: FlagOperations {
            metrics_addr: Some("127.0.0.1:9800".into()),
            ..FlagOperations::default()
        },
        ..from_file.clone()
    };
    let flag_wins = load(&flag, &[("RINGCAST_METRICS_ADDR", "127.0.0.1:9700")]).unwrap();
    assert_eq!(metrics(flag_wins).as_deref(), Some("127.0.0.1:9800"));
    let e = load(&Overrides::default(), &[("RINGCAST_METRICS_ADDR", "9601")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RINGCAST_METRICS_ADDR must be an IP address and port such as 127.0.0.1:9601, got \"9601\""
    );
    std::fs::write(&file, "port = 9000\nmetrics_addr = \"0.0.0.0:9000\"\n").unwrap();
    let e = load(&from_file, &[]).unwrap_err().to_string();
    assert!(e.starts_with("metrics_addr must be another port"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn log_format_and_debug_follow_the_layers() {
    let dir = tmpdir("logs");
    let load = |flags: &Overrides, vars: &[(&str, &str)]| Config::load(flags, &dir, &env(vars));
    let d = load(&Overrides::default(), &[]).unwrap().operations;
    assert_eq!((d.log_format, d.debug), (LogFormat::Text, false));
    let file = dir.join("ringcast.toml");
    std::fs::write(&file, "log_format = \"json\"\ndebug = true\n").unwrap();
    let from_file = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    let f = load(&from_file, &[]).unwrap().operations;
    assert_eq!((f.log_format, f.debug), (LogFormat::Json, true));
    let e = load(
        &from_file,
        &[("RINGCAST_LOG_FORMAT", "TEXT"), ("RINGCAST_DEBUG", "0")],
    )
    .unwrap()
    .operations;
    assert_eq!((e.log_format, e.debug), (LogFormat::Text, false));
    let flag = Overrides {
        operations: FlagOperations {
            debug: true,
            ..FlagOperations::default()
        },
        ..Overrides::default()
    };
    assert!(
        load(&flag, &[("RINGCAST_DEBUG", "false")])
            .unwrap()
            .operations
            .debug
    );
    let e = load(&Overrides::default(), &[("RINGCAST_LOG_FORMAT", "xml")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RINGCAST_LOG_FORMAT must be text or json, got \"xml\""
    );
}

#[test]
fn tls_files_follow_the_layers_and_need_each_other() {
    let dir = tmpdir("tls");
    let load = |flags: &Overrides, vars: &[(&str, &str)]| Config::load(flags, &dir, &env(vars));
    let files = |c: Config| {
        c.operations
            .tls()
            .map(|t| (t.cert.display().to_string(), t.key.display().to_string()))
    };
    assert_eq!(files(load(&Overrides::default(), &[]).unwrap()), None);
    let file = dir.join("ringcast.toml");
    std::fs::write(
        &file,
        "tls_cert = \"/etc/c.pem\"\ntls_key = \"/etc/k.pem\"\n",
    )
    .unwrap();
    let from_file = Overrides {
        config_file: Some(file.to_string_lossy().into()),
        ..Overrides::default()
    };
    let pair = |c: &str, k: &str| Some((c.to_string(), k.to_string()));
    assert_eq!(
        files(load(&from_file, &[]).unwrap()),
        pair("/etc/c.pem", "/etc/k.pem")
    );
    let env_wins = load(&from_file, &[("RINGCAST_TLS_CERT", "/env/c.pem")]).unwrap();
    assert_eq!(files(env_wins), pair("/env/c.pem", "/etc/k.pem"));
    let flag = Overrides {
        operations: FlagOperations {
            tls_key: Some("/flag/k.pem".into()),
            ..FlagOperations::default()
        },
        ..from_file.clone()
    };
    let flag_wins = load(&flag, &[("RINGCAST_TLS_KEY", "/env/k.pem")]).unwrap();
    assert_eq!(files(flag_wins), pair("/etc/c.pem", "/flag/k.pem"));
    let e = load(
        &Overrides::default(),
        &[("RINGCAST_TLS_CERT", "/env/c.pem")],
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TLS needs a certificate and its key, but the key is not set"),
        "{e}"
    );
    let e = load(&from_file, &[("RINGCAST_TLS_CERT", "")]).unwrap_err();
    assert!(e.to_string().contains("the certificate is not set"), "{e}");
    // A reload may read the certificate from new paths; turning TLS off needs a restart.
    let on = load(&from_file, &[]).unwrap().operations;
    let moved = load(&from_file, &[("RINGCAST_TLS_CERT", "/new/c.pem")])
        .unwrap()
        .operations;
    let off = load(&Overrides::default(), &[]).unwrap().operations;
    assert!(!on.needs_restart_for(&moved));
    assert!(on.needs_restart_for(&off));
}
