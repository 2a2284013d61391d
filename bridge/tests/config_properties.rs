//! Property tests of the bridge's configuration loader: TOML text, parsed
//! into a `BridgeConfig` and validated, never panics, and a rejected value
//! is named by its field. The `config_loader` fuzz target in `fuzz/` feeds
//! the combined `floorwatch up` file through the same loader.

use floorwatch_bridge::BridgeConfig;
use proptest::prelude::*;

/// Values of one kind, chosen to sit on the edges of what the loader checks.
type Pool = &'static [&'static str];

const UNSIGNED: Pool = &[
    "0",
    "1",
    "3",
    "60",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-1",
];
const FLOAT: Pool = &[
    "0.0", "1.0", "29.0", "30.5", "-273.15", "100.0", "1e308", "-1e308", "nan", "inf", "-inf",
];
const BOOL: Pool = &["true", "false"];
const ID: Pool = &[
    "\"oven-1\"",
    "\"plant-1\"",
    "\"temperature-high\"",
    "\"plant 1\"",
    "\"\"",
    "\"\u{f6}\"",
    "\"a/b/#\"",
];
const TEXT: Pool = &["\"alex\"", "\"repair\"", "\"\"", "\"   \"", "\"\u{1f525}\""];
const METRIC: Pool = &["\"temperature\"", "\"humidity\"", "\"pressure\""];
const RULE_KIND: Pool = &["\"threshold\"", "\"rate\"", "\"slope\""];
const CONDITION: Pool = &["\"above\"", "\"below\"", "\"equal\""];
const SEVERITY: Pool = &["\"warning\"", "\"critical\"", "\"info\""];
const BROKER_URL: Pool = &[
    "\"mqtt://127.0.0.1:1883\"",
    "\"mqtts://broker\"",
    "\"mqtt://broker:99999\"",
    "\"tcp://broker\"",
    "\"\"",
];
const PREFIX: Pool = &["\"floorwatch\"", "\"a/b\"", "\"/lead\"", "\"x/#\"", "\"\""];
const LISTEN: Pool = &["\"127.0.0.1:0\"", "\"[::1]:8081\"", "\"localhost:80\""];
const ENDPOINT_URL: Pool = &[
    "\"https://example.com/webhooks\"",
    "\"http://10.0.0.1/hook\"",
    "\"http://user:pw@example.com/\"",
    "\"ftp://example.com/\"",
    "\"http://[::1\"",
    "\"https://\"",
];
const SECRET: Pool = &[
    "\"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"",
    "\"whsec_!!\"",
    "\"whsec_AAAA\"",
];
const SECRETS: Pool = &["[]", "[\"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\", \"x\"]"];
const SIGNING_KEYS: Pool = &[
    "[]",
    "[\"whsk_AAAA\"]",
    "[\"whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==\"]",
];
const EVENTS: Pool = &["[]", "[\"incident.*\"]", "[\"*\", \"nothing.*\"]"];
const TIME_ZONE: Pool = &["\"Europe/Berlin\"", "\"UTC\"", "\"Mars/Olympus\""];
const CLOCK: Pool = &[
    "\"07:30\"",
    "\"22:00\"",
    "\"24:00\"",
    "\"7.30\"",
    "\"\u{663}\u{663}:00\"",
];
const DAYS: Pool = &["[]", "[\"sat\", \"sun\"]", "[\"caturday\"]"];
const DATE_TIME: Pool = &[
    "2026-12-04T10:00:00Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-12-04",
];
const UNSIGNED_LIST: Pool = &["[]", "[0]", "[3600, 1]", "[18446744073709551615]"];

/// Keys of a section with the values they take.
type Keys = &'static [(&'static str, Pool)];

/// One section of a `[bridge]` table: its header (empty for the top level),
/// the keys it needs to parse at all, and the optional keys.
struct Section {
    header: &'static str,
    required: Keys,
    optional: Keys,
}

const TOP: Keys = &[("database", TEXT), ("max_sensors", UNSIGNED)];

const SECTIONS: &[Section] = &[
    Section {
        header: "[mqtt]",
        required: &[],
        optional: &[
            ("url", BROKER_URL),
            ("client_id", TEXT),
            ("topic_prefix", PREFIX),
            ("username", TEXT),
            ("password", TEXT),
        ],
    },
    Section {
        header: "[[rules]]",
        required: &[
            ("id", ID),
            ("condition", CONDITION),
            ("threshold", FLOAT),
            ("clear_threshold", FLOAT),
        ],
        optional: &[
            ("metric", METRIC),
            ("kind", RULE_KIND),
            ("consecutive", UNSIGNED),
            ("clear_consecutive", UNSIGNED),
            ("for_secs", UNSIGNED),
            ("clear_for_secs", UNSIGNED),
            ("severity", SEVERITY),
            ("critical_threshold", FLOAT),
            ("critical_clear_threshold", FLOAT),
            ("window_secs", UNSIGNED),
            ("min_samples", UNSIGNED),
            ("enabled", BOOL),
        ],
    },
    Section {
        header: "[health]",
        required: &[],
        optional: &[
            ("expected_interval_secs", UNSIGNED),
            ("silent_after_intervals", UNSIGNED),
            ("stuck_count", UNSIGNED),
        ],
    },
    Section {
        header: "[health.temperature]",
        required: &[("min", FLOAT), ("max", FLOAT)],
        optional: &[("spike_delta", FLOAT)],
    },
    Section {
        header: "[health.humidity]",
        required: &[("min", FLOAT), ("max", FLOAT)],
        optional: &[("spike_delta", FLOAT)],
    },
    Section {
        header: "[[overrides]]",
        required: &[("site", ID)],
        optional: &[
            ("sensor", ID),
            ("rule", ID),
            ("enabled", BOOL),
            ("threshold", FLOAT),
            ("clear_threshold", FLOAT),
            ("critical_threshold", FLOAT),
            ("critical_clear_threshold", FLOAT),
            ("consecutive", UNSIGNED),
            ("clear_consecutive", UNSIGNED),
            ("for_secs", UNSIGNED),
            ("clear_for_secs", UNSIGNED),
            ("severity", SEVERITY),
            ("expected_interval_secs", UNSIGNED),
            ("silent_after_intervals", UNSIGNED),
            ("stuck_count", UNSIGNED),
        ],
    },
    Section {
        header: "[reminders]",
        required: &[],
        optional: &[("after_secs", UNSIGNED_LIST)],
    },
    Section {
        header: "[http]",
        required: &[],
        optional: &[
            ("enabled", BOOL),
            ("listen", LISTEN),
            ("default_site", ID),
            ("max_body_bytes", UNSIGNED),
        ],
    },
    Section {
        header: "[[silences]]",
        required: &[
            ("expires_at", DATE_TIME),
            ("author", TEXT),
            ("reason", TEXT),
        ],
        optional: &[
            ("site", ID),
            ("sensor", ID),
            ("rule", ID),
            ("starts_at", DATE_TIME),
        ],
    },
    Section {
        header: "[[maintenance]]",
        required: &[
            ("name", TEXT),
            ("time_zone", TIME_ZONE),
            ("start", CLOCK),
            ("end", CLOCK),
        ],
        optional: &[("site", ID), ("sensor", ID), ("rule", ID), ("days", DAYS)],
    },
    Section {
        header: "[[endpoints]]",
        required: &[("url", ENDPOINT_URL)],
        optional: &[
            ("secret", SECRET),
            ("secrets", SECRETS),
            ("signing_keys", SIGNING_KEYS),
            ("events", EVENTS),
            ("timeout_secs", UNSIGNED),
            ("allow_private", BOOL),
            ("enabled", BOOL),
            ("max_concurrency", UNSIGNED),
            ("rate_limit_per_sec", FLOAT),
            ("breaker_failures", UNSIGNED),
            ("breaker_cooldown_ms", UNSIGNED),
            ("breaker_max_cooldown_ms", UNSIGNED),
        ],
    },
    Section {
        header: "[delivery]",
        required: &[],
        optional: &[("retry_schedule_ms", UNSIGNED_LIST), ("jitter", FLOAT)],
    },
];

/// Generates a value of any kind, for keys given a value of the wrong type.
fn any_value() -> impl Strategy<Value = String> {
    let pools = [
        UNSIGNED, FLOAT, BOOL, ID, TEXT, DATE_TIME, DAYS, EVENTS, SECRET, CLOCK,
    ];
    let values: Vec<&'static str> = pools.concat();
    prop_oneof![
        4 => proptest::sample::select(values).prop_map(str::to_owned),
        1 => "[^\"\\\\\\n]{0,16}".prop_map(|text| format!("\"{text}\"")),
        1 => any::<f64>().prop_map(|number| format!("{number:?}").replace("NaN", "nan")),
    ]
}

/// Generates one `key = value` line, mostly with a value of the key's own
/// kind and sometimes with one of any kind.
fn key_line(key: &'static str, pool: Pool) -> impl Strategy<Value = String> {
    let value = prop_oneof![
        6 => proptest::sample::select(pool).prop_map(str::to_owned),
        1 => any_value(),
    ];
    value.prop_map(move |value| format!("{key} = {value}"))
}

/// Generates a line for every key of `required` and for up to
/// `max_optional` keys of `optional`.
fn key_lines(required: Keys, optional: Keys, max_optional: usize) -> BoxedStrategy<Vec<String>> {
    let required: Vec<BoxedStrategy<String>> = required
        .iter()
        .map(|(key, pool)| key_line(key, pool).boxed())
        .collect();
    let optional =
        proptest::sample::subsequence(optional.to_vec(), 0..=max_optional.min(optional.len()))
            .prop_flat_map(|keys| {
                keys.into_iter()
                    .map(|(key, pool)| key_line(key, pool).boxed())
                    .collect::<Vec<_>>()
            });
    (required, optional)
        .prop_map(|(mut lines, more)| {
            lines.extend(more);
            lines
        })
        .boxed()
}

/// Generates one section: its header, its required keys and some optional
/// ones.
fn section() -> impl Strategy<Value = String> {
    (0..SECTIONS.len()).prop_flat_map(|index| {
        let section = &SECTIONS[index];
        key_lines(section.required, section.optional, 5)
            .prop_map(move |lines| format!("{}\n{}\n", section.header, lines.join("\n")))
    })
}

/// Generates a whole `[bridge]` table: top-level keys, then sections.
fn bridge_toml() -> impl Strategy<Value = String> {
    (
        key_lines(&[], TOP, 2),
        proptest::collection::vec(section(), 0..6),
    )
        .prop_map(|(top, sections)| format!("{}\n{}", top.join("\n"), sections.concat()))
}

/// Parses and validates `text`, and checks that an invalid value names a
/// field of the `bridge` section.
fn check_loader(text: &str) -> Result<(), TestCaseError> {
    let Ok(config) = toml::from_str::<BridgeConfig>(text) else {
        return Ok(());
    };
    if let Err(error) = config.validate() {
        prop_assert!(
            error.field.starts_with("bridge."),
            "field {:?} of {}",
            error.field,
            error
        );
        prop_assert!(!error.fix.is_empty(), "{}", error);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn loader_never_panics_on_text(text in "\\PC{0,200}") {
        check_loader(&text)?;
    }

    #[test]
    fn loader_never_panics_on_config_shapes(text in bridge_toml()) {
        check_loader(&text)?;
    }
}

#[test]
fn loader_accepts_empty_and_example_files() {
    let empty: BridgeConfig = toml::from_str("").unwrap();
    assert_eq!(empty.validate(), Ok(()));
    let example = r#"
        max_sensors = 10
        [[rules]]
        id = "hot"
        condition = "above"
        threshold = 30.0
        clear_threshold = 29.0
        [[endpoints]]
        url = "https://example.com/webhooks"
        secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    "#;
    let config: BridgeConfig = toml::from_str(example).unwrap();
    assert_eq!(config.validate(), Ok(()));
}

/// Guards the generator itself: a generator whose files all fail to parse
/// would make `loader_never_panics_on_config_shapes` test nothing.
#[test]
fn generated_files_reach_validation() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = bridge_toml();
    let (mut parsed, mut valid) = (0, 0);
    let mut rejected_fields = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        let Ok(config) = toml::from_str::<BridgeConfig>(&text) else {
            continue;
        };
        parsed += 1;
        match config.validate() {
            Ok(()) => valid += 1,
            Err(error) => {
                // `bridge.rules[2].id` and `bridge.rules[0].id` are one field.
                let field: String = error
                    .field
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                rejected_fields.insert(field);
            }
        }
    }
    assert!(parsed >= 200, "{parsed} of 1000 generated files parsed");
    assert!(valid >= 50, "{valid} of 1000 generated files were valid");
    assert!(
        rejected_fields.len() >= 15,
        "validation rejected only {rejected_fields:?}"
    );
}
