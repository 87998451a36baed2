//! Unit tests of DevCycle bucketing. Expected values marked "reference" were produced by
//! running @devcycle/bucketing 1.38.7 on the same input.

use super::*;
use serde_json::json;

const NOW: i64 = 1_718_452_800_000; // 2024-06-15T12:00:00.000Z

fn filter(node: Value) -> UserFilter {
    UserFilter::compile(&node, "$").expect("filter compiles")
}

fn user_filter(sub_type: &str, comparator: &str, values: Value) -> UserFilter {
    filter(json!({"type": "user", "subType": sub_type, "comparator": comparator, "values": values}))
}

fn custom(comparator: &str, values: Value) -> UserFilter {
    filter(json!({"type": "user", "subType": "customData", "comparator": comparator,
        "dataKey": "k", "dataKeyType": "String", "values": values}))
}

/// A user whose `field` is `value` (`null` here means: absent).
fn with(field: &str, value: Value) -> Value {
    let mut u = json!({});
    if !value.is_null() {
        u[field] = value;
    }
    u
}

fn with_custom(value: Value) -> Value {
    json!({"user_id": "u", "customData": {"k": value}})
}

#[test]
fn string_comparators() {
    let cases: &[(&str, Value, Value, bool)] = &[
        ("=", json!(["US", "CA"]), json!("US"), true),
        ("=", json!(["US", "CA"]), json!("DE"), false),
        ("=", json!(["US"]), Value::Null, false),
        ("=", json!([]), json!("US"), false),
        ("=", json!([null]), json!("US"), false),
        ("=", json!([5]), json!("5"), false),
        ("!=", json!(["US"]), json!("DE"), true),
        ("!=", json!(["US"]), json!("US"), false),
        ("!=", json!(["US"]), Value::Null, false),
        ("!=", json!([]), json!("DE"), false),
        ("!=", json!([5]), json!("DE"), true),
        ("exist", json!([]), json!("US"), true),
        ("exist", json!([]), json!(""), false),
        ("exist", json!([]), Value::Null, false),
        ("exist", json!([]), json!(5), false),
        ("!exist", json!([]), json!(""), true),
        ("!exist", json!([]), Value::Null, true),
        ("!exist", json!([]), json!(5), true),
        ("!exist", json!([]), json!("US"), false),
        ("contain", json!(["S"]), json!("US"), true),
        ("contain", json!(["x", "U"]), json!("US"), true),
        ("contain", json!(["x"]), json!("US"), false),
        // The first value found decides, and it must be truthy: "" is found in everything.
        ("contain", json!(["", "U"]), json!("US"), false),
        ("contain", json!(["U", ""]), json!("US"), true),
        // Values are searched as `String(value)`.
        ("contain", json!([1]), json!("A1"), true),
        ("contain", json!([0]), json!("A0"), false),
        ("contain", json!([true]), json!("is true"), true),
        ("contain", json!([{}]), json!("[object Object]"), true),
        ("contain", json!(["U"]), Value::Null, false),
        ("!contain", json!(["x"]), json!("US"), true),
        ("!contain", json!(["U"]), json!("US"), false),
        ("!contain", json!(["U"]), Value::Null, true),
        ("!contain", json!(["", "U"]), json!("US"), true),
        ("!contain", json!([]), Value::Null, false),
        ("startWith", json!(["U"]), json!("US"), true),
        ("startWith", json!(["S"]), json!("US"), false),
        ("startWith", json!(["", "U"]), json!("US"), false),
        ("startWith", json!([5, "U"]), json!("US"), true),
        ("startWith", json!([5]), json!("5x"), false),
        ("!startWith", json!(["x"]), json!("US"), true),
        ("!startWith", json!(["U"]), json!("US"), false),
        ("!startWith", json!(["U"]), Value::Null, true),
        ("!startWith", json!([]), Value::Null, false),
        ("endWith", json!(["S"]), json!("US"), true),
        ("endWith", json!(["U"]), json!("US"), false),
        ("!endWith", json!(["US", "CA"]), json!("CA"), false),
        ("!endWith", json!(["US", "CA"]), json!("GB"), true),
        // `>`/`>=`/`<`/`<=` are not string comparisons in the reference: any string passes.
        (">", json!(["ZZ"]), json!("US"), true),
        ("<=", json!([]), json!("US"), true),
        (">=", json!(["A"]), Value::Null, false),
    ];
    for sub_type in ["user_id", "email", "country", "platform", "deviceModel"] {
        for (comparator, values, value, want) in cases {
            let f = user_filter(sub_type, comparator, values.clone());
            assert_eq!(f.matches(&with(sub_type, value.clone())), *want, "{sub_type} {comparator} {values} on {value}");
        }
    }
}

#[test]
fn missing_values_are_null_values() {
    let f = filter(json!({"type": "user", "subType": "email", "comparator": "!contain"}));
    assert!(!f.matches(&with("email", json!("a@b.c"))));
    let f = filter(json!({"type": "user", "subType": "email", "comparator": "exist", "values": null}));
    assert!(f.matches(&with("email", json!("a@b.c"))));
}

#[test]
fn custom_data_numbers() {
    assert!(custom("<", json!([25])).matches(&with_custom(json!(0.5))));
    assert!(!custom("<", json!([25])).matches(&with_custom(json!(25))));
    assert!(custom("<=", json!([25])).matches(&with_custom(json!(25))));
    assert!(custom(">", json!([1, 100])).matches(&with_custom(json!(50))));
    assert!(custom(">=", json!([50])).matches(&with_custom(json!(50.0))));
    assert!(custom("=", json!([50])).matches(&with_custom(json!(50.0))));
    assert!(custom("=", json!([7, 50])).matches(&with_custom(json!(50))));
    // A string user value is not a number here.
    assert!(!custom("<", json!([25])).matches(&with_custom(json!("0.5"))));
    // `!=` needs every filter value to be a different number.
    assert!(custom("!=", json!([50])).matches(&with_custom(json!(3))));
    assert!(!custom("!=", json!([50, "x"])).matches(&with_custom(json!(3))));
    assert!(!custom("!=", json!([3, 50])).matches(&with_custom(json!(3))));
    assert!(custom("!=", json!([50])).matches(&with_custom(json!(0))));
    // Type mismatch: only `!=` against a missing or falsy value passes.
    assert!(custom("!=", json!([50])).matches(&with_custom(Value::Null)));
    assert!(custom("!=", json!([50])).matches(&json!({"user_id": "u"})));
    assert!(custom("!=", json!([50])).matches(&with_custom(json!(""))));
    assert!(custom("!=", json!([50])).matches(&with_custom(json!(false))));
    assert!(!custom("!=", json!([50])).matches(&with_custom(json!("abc"))));
    assert!(!custom("=", json!([50])).matches(&with_custom(json!("50"))));
    // Other comparators never match numbers.
    assert!(!custom("contain", json!([5])).matches(&with_custom(json!(5))));
    assert!(!custom("startWith", json!([5])).matches(&with_custom(json!(5))));
}

#[test]
fn custom_data_booleans_and_strings() {
    assert!(custom("=", json!([true])).matches(&with_custom(json!(true))));
    assert!(!custom("=", json!([true])).matches(&with_custom(json!(false))));
    assert!(custom("contain", json!([false])).matches(&with_custom(json!(false))));
    assert!(custom("!=", json!([true])).matches(&with_custom(json!(false))));
    assert!(custom("!contain", json!([true])).matches(&with_custom(json!(false))));
    assert!(!custom(">", json!([true])).matches(&with_custom(json!(true))));
    assert!(!custom("=", json!([true])).matches(&with_custom(json!("true"))));

    assert!(custom("=", json!(["pro"])).matches(&with_custom(json!("pro"))));
    assert!(custom("contain", json!(["ro"])).matches(&with_custom(json!("pro"))));
    assert!(custom("endWith", json!(["Pro", "ree"])).matches(&with_custom(json!("free"))));
    assert!(!custom("=", json!(["5"])).matches(&with_custom(json!(5))));
    // The first filter value picks the comparison.
    assert!(!custom("=", json!(["a", 5])).matches(&with_custom(json!(5))));
    assert!(custom("=", json!([5, "a"])).matches(&with_custom(json!(5))));
    assert!(!custom("=", json!([5, "a"])).matches(&with_custom(json!("a"))));
    // No usable first value: only the `!=` fallback remains.
    assert!(!custom("=", json!([])).matches(&with_custom(json!("a"))));
    assert!(custom("!=", json!([[1]])).matches(&with_custom(json!(0))));
}

#[test]
fn custom_data_exist_and_private_data() {
    for (value, exists) in [
        (json!(false), true),
        (json!(0), true),
        (json!({}), true),
        (json!("x"), true),
        (json!(""), false),
        (Value::Null, false),
    ] {
        assert_eq!(custom("exist", json!([])).matches(&with_custom(value.clone())), exists, "{value}");
        assert_eq!(custom("!exist", json!([])).matches(&with_custom(value.clone())), !exists, "{value}");
    }
    assert!(!custom("exist", json!([])).matches(&json!({"user_id": "u"})));
    assert!(!custom("exist", json!([])).matches(&json!({"customData": "k"})));

    // `{...customData, ...privateCustomData}`: private values win, even null ones.
    let user = json!({"customData": {"k": "pro"}, "privateCustomData": {"k": "Pro"}});
    assert!(custom("=", json!(["Pro"])).matches(&user));
    assert!(!custom("=", json!(["pro"])).matches(&user));
    let user = json!({"customData": {"k": "pro"}, "privateCustomData": {"k": null}});
    assert!(!custom("exist", json!([])).matches(&user));
    let user = json!({"customData": {"k": "pro"}, "privateCustomData": {"other": 1}});
    assert!(custom("=", json!(["pro"])).matches(&user));
    let user = json!({"privateCustomData": {"k": 3}});
    assert!(custom("<", json!([4])).matches(&user));

    // Without a data key the reference lets everyone through.
    for node in [
        json!({"type": "user", "subType": "customData", "comparator": "=", "values": ["x"]}),
        json!({"type": "user", "subType": "customData", "comparator": "=", "dataKey": "", "values": ["x"]}),
    ] {
        assert!(filter(node).matches(&json!({})));
    }
}

#[test]
fn version_filters() {
    let app = |cmp: &str, values: Value, version: Value| {
        user_filter("appVersion", cmp, values).matches(&with("appVersion", version))
    };
    // `=` is an exact string comparison.
    assert!(app("=", json!(["1.0"]), json!("1.0")));
    assert!(!app("=", json!(["1.0"]), json!("1.0.0")));
    assert!(app("=", json!(["2.1", "x"]), json!("x")));
    // The others drop everything after a `-` and compare numerically, zero-extended.
    assert!(app(">", json!(["1.2.3"]), json!("1.2.4")));
    assert!(app(">", json!(["1.2.3"]), json!("1.10")));
    assert!(app(">", json!(["1.2.3"]), json!("2")));
    assert!(!app(">", json!(["1.2.3"]), json!("1.2")));
    assert!(!app(">", json!(["1.2.3"]), json!("1.2.3-beta.9")));
    assert!(app(">=", json!(["1.2.3"]), json!("1.2.3-beta.9")));
    assert!(app(">=", json!(["3.0.0-beta"]), json!("3.0.0")));
    assert!(app("<", json!(["2"]), json!("1.9.9")));
    assert!(app("<=", json!(["1.2"]), json!("1.2.0.0")));
    assert!(app(">", json!(["9", "1.0"]), json!("1.1")));
    assert!(app(">", json!(["1.2"]), json!("v1.3b")));
    // Letters are removed: "abc" becomes "" and then 0.0.0.
    assert!(app("<", json!(["2"]), json!("abc")));
    // An invalid filter version never matches.
    assert!(!app(">", json!(["1..2"]), json!("3")));
    assert!(!app(">", json!(["-1"]), json!("3")));
    // `!=` compares the raw strings' parts: a prerelease never equals anything.
    assert!(!app("!=", json!(["1.2.3-beta.1", "4.0.0.1"]), json!("4.0.0.1")));
    assert!(!app("!=", json!(["1.2.3"]), json!("1.2.3.0")));
    assert!(app("!=", json!(["1.2.3-beta.1", "4.0.0.1"]), json!("1.2.3")));
    assert!(app("!=", json!(["1.2.3-beta.1"]), json!("1.2.3-beta.1")));
    assert!(app("!=", json!([5]), json!("1.2.3")));
    // Missing or empty versions, missing values and other comparators never match.
    for cmp in ["!=", ">", "<=", "exist", "!exist", "contain", "!contain", "startWith", "!endWith"] {
        assert!(!app(cmp, json!(["1.0"]), Value::Null), "{cmp}");
        assert!(!app(cmp, json!(["1.0"]), json!("")), "{cmp}");
        assert!(!app(cmp, json!(["1.0"]), json!(2)), "{cmp}");
    }
    assert!(!app(">", json!([]), json!("2.0")));
    assert!(!app("!=", json!([]), json!("2.0")));
    for cmp in ["exist", "!exist", "contain", "!contain", "startWith", "endWith"] {
        assert!(!app(cmp, json!(["1.0"]), json!("1.0")), "{cmp}");
    }
    let platform = user_filter("platformVersion", ">=", json!(["10"]));
    assert!(platform.matches(&json!({"platformVersion": "10.0.1"})));
    assert!(!platform.matches(&json!({"appVersion": "10.0.1"})));
}

#[test]
fn all_ip_opt_in_and_groups() {
    let user = json!({"user_id": "u", "country": "US", "optIns": {"f1": true}});
    assert!(filter(json!({"type": "all"})).matches(&user));
    assert!(!user_filter("ip", "exist", json!([])).matches(&user));
    let opt_in = filter(json!({"type": "optIn"}));
    assert!(!opt_in.matches(&user));
    assert!(opt_in.matches_in_feature(&user, "f1", true));
    assert!(!opt_in.matches_in_feature(&user, "f1", false));
    assert!(!opt_in.matches_in_feature(&user, "f2", true));
    let or = filter(json!({"operator": "or", "filters": [
        {"type": "user", "subType": "country", "comparator": "=", "values": ["CA"]},
        {"type": "user", "subType": "country", "comparator": "=", "values": ["US"]}]}));
    assert!(or.matches(&user));
    let and = filter(json!({"operator": "and", "filters": [
        {"type": "all"},
        {"type": "user", "subType": "country", "comparator": "=", "values": ["CA"]}]}));
    assert!(!and.matches(&user));
    // A group without filters matches nobody.
    assert!(!filter(json!({"operator": "and", "filters": []})).matches(&user));
    assert!(!filter(json!({"operator": "or"})).matches(&user));
    // A user that is not an object has no fields.
    assert!(!user_filter("country", "exist", json!([])).matches(&json!("US")));
    assert!(user_filter("country", "!exist", json!([])).matches(&json!(null)));
}

#[test]
fn filter_compile_errors() {
    let err = |node: Value| UserFilter::compile(&node, "$.f").expect_err("must fail");
    assert_eq!(err(json!("all")).path, "$.f");
    assert_eq!(err(json!({})).path, "$.f.type");
    assert_eq!(err(json!({"type": 3})).path, "$.f.type");
    assert_eq!(err(json!({"type": "everyone"})).path, "$.f.type");
    assert_eq!(err(json!({"type": "audienceMatch", "comparator": "=", "_audiences": []})).path, "$.f.type");
    assert_eq!(err(json!({"type": "user", "comparator": "="})).path, "$.f.subType");
    assert_eq!(err(json!({"type": "user", "subType": "zip", "comparator": "="})).path, "$.f.subType");
    assert_eq!(err(json!({"type": "user", "subType": "email"})).path, "$.f.comparator");
    assert_eq!(err(json!({"type": "user", "subType": "email", "comparator": "=="})).path, "$.f.comparator");
    assert_eq!(err(json!({"type": "user", "subType": "email", "comparator": "=", "values": "a"})).path, "$.f.values");
    assert_eq!(
        err(json!({"type": "user", "subType": "customData", "comparator": "=", "dataKey": 5})).path,
        "$.f.dataKey"
    );
    assert_eq!(
        err(json!({"type": "user", "subType": "customData", "comparator": "=", "dataKey": "k",
            "dataKeyType": 1}))
        .path,
        "$.f.dataKeyType"
    );
    assert_eq!(err(json!({"operator": "xor", "filters": []})).path, "$.f.operator");
    assert_eq!(err(json!({"operator": "and", "filters": {}})).path, "$.f.filters");
    assert_eq!(
        err(json!({"operator": "and", "filters": [{"type": "all"}, {"type": "nope"}]})).path,
        "$.f.filters[1].type"
    );
}

fn nested_groups(levels: usize) -> Value {
    let mut node = json!({"type": "all"});
    for _ in 0..levels {
        node = json!({"operator": "and", "filters": [node]});
    }
    node
}

#[test]
fn depth_limit() {
    // MAX_RULE_DEPTH nodes deep (63 groups around a leaf) compiles; one more level does not.
    assert!(UserFilter::compile(&nested_groups(MAX_RULE_DEPTH - 1), "$").is_ok());
    let err = UserFilter::compile(&nested_groups(MAX_RULE_DEPTH), "$").expect_err("too deep");
    assert!(err.message.contains("nested deeper"), "{err}");
    assert!(err.path.starts_with("$.filters[0]"), "{err}");
    // Very deep input fails cleanly instead of overflowing the stack.
    // (Built by hand: `json!` on an expression serializes it, recursively.)
    let mut deep = json!({"type": "all"});
    for _ in 0..100_000 {
        let mut group = Map::new();
        group.insert("operator".into(), json!("or"));
        group.insert("filters".into(), Value::Array(vec![deep]));
        deep = Value::Object(group);
    }
    assert!(UserFilter::compile(&deep, "$").is_err());
    // Drop iteratively-built deep JSON without recursing through serde_json's Drop.
    let mut v = deep;
    while let Some(inner) = v.get_mut("filters").and_then(|f| f.get_mut(0)).map(Value::take) {
        v = inner;
    }
}

// ---------------------------------------------------------------------------------------------
// Whole configs

fn variation(id: &str, value: Value) -> Value {
    json!({"_id": id, "key": format!("key-{id}"), "name": format!("Name {id}"),
        "variables": [{"_var": "var-1", "value": value}]})
}

fn config_with(targets: Value, disable_passthrough: bool) -> Value {
    json!({
        "project": {"_id": "p", "key": "proj",
            "settings": {"disablePassthroughRollouts": disable_passthrough}},
        "environment": {"_id": "e", "key": "production"},
        "audiences": {},
        "features": [{"_id": "f1", "key": "feat", "type": "release",
            "variations": [variation("a", json!("A")), variation("b", json!("B"))],
            "configuration": {"_id": "c", "targets": targets}}],
        "variables": [{"_id": "var-1", "key": "the-var", "type": "String"}]
    })
}

fn all_target(id: &str, variation: &str) -> Value {
    json!({"_id": id, "_audience": {"_id": "x", "filters": {"operator": "and", "filters": [{"type": "all"}]}},
        "distribution": [{"_variation": variation, "percentage": 1}]})
}

fn variation_of(out: &Value) -> Option<&str> {
    out["features"]["feat"]["_variation"].as_str()
}

fn run(config: &Value, user: Value) -> Value {
    bucket(config, &user, NOW).expect("buckets")
}

#[test]
fn targets_are_evaluated_in_order() {
    let country = |id: &str, c: &str, var: &str| {
        json!({"_id": id, "_audience": {"_id": "x", "filters": {"operator": "and", "filters": [
            {"type": "user", "subType": "country", "comparator": "=", "values": [c]}]}},
            "distribution": [{"_variation": var, "percentage": 1}]})
    };
    let config = config_with(json!([country("t1", "US", "a"), country("t2", "CA", "b"), all_target("t3", "b")]), false);
    assert_eq!(variation_of(&run(&config, json!({"user_id": "u", "country": "US"}))), Some("a"));
    assert_eq!(variation_of(&run(&config, json!({"user_id": "u", "country": "CA"}))), Some("b"));
    let out = run(&config, json!({"user_id": "u", "country": "DE"}));
    assert_eq!(out["features"]["feat"]["eval"]["target_id"], "t3");
    let no_fallback = config_with(json!([country("t1", "US", "a")]), false);
    let out = run(&no_fallback, json!({"user_id": "u"}));
    assert_eq!(out["features"], json!({}));
    assert_eq!(out["variables"], json!({}));
    assert_eq!(out["featureVariationMap"], json!({}));
}

#[test]
fn overrides_apply_after_bucketing_to_their_user_only() {
    // As `generateBucketedConfig(..., overrides)`: the override wins over targeting (and serves a
    // user no target would), with `{reason: OVERRIDE, details: Override}` and no target id;
    // overrides of unknown features or variations are ignored.
    let us_only = json!([{"_id": "t1", "_audience": {"_id": "x", "filters": {"operator": "and", "filters": [
        {"type": "user", "subType": "country", "comparator": "=", "values": ["US"]}]}},
        "distribution": [{"_variation": "a", "percentage": 1}]}]);
    let mut config = Config::compile(&config_with(us_only, false), "$").expect("compiles");
    let overrides = json!({"qa": {"f1": "b", "nope": "a"}, "qa2": {"f1": "nope"}});
    config.set_overrides(Some(&overrides), "$.devcycleOverrides").expect("overrides");
    let qa = config.bucket(&json!({"user_id": "qa", "country": "US"}), NOW);
    assert_eq!(variation_of(&qa), Some("b"));
    assert_eq!(qa["features"]["feat"]["eval"], json!({"reason": "OVERRIDE", "details": "Override"}));
    assert_eq!(qa["variables"]["the-var"]["value"], "B");
    assert_eq!(variation_of(&config.bucket(&json!({"user_id": "qa", "country": "DE"}), NOW)), Some("b"));
    assert_eq!(variation_of(&config.bucket(&json!({"user_id": "qa2", "country": "US"}), NOW)), Some("a"));
    assert_eq!(variation_of(&config.bucket(&json!({"user_id": "u", "country": "US"}), NOW)), Some("a"));
    let user = json!({"user_id": "qa", "country": "DE"});
    let served = config.serve(0, user.as_object().expect("object"), NOW as f64, &mut config.scratch(), None);
    assert_eq!(served.map(|s| (s.variation, s.overridden)), Some((1, true)));
    assert!(config.set_overrides(Some(&json!({"qa": {"f1": 1}})), "$.devcycleOverrides").is_err());
}

#[test]
fn passthrough_rollouts() {
    let mut future = all_target("t1", "a");
    future["rollout"] = json!({"type": "schedule", "startDate": "2024-06-16T00:00:00.000Z"});
    let targets = json!([future, all_target("t2", "b")]);
    // Passthrough (the default): a user outside the rollout falls through to the next target.
    let out = run(&config_with(targets.clone(), false), json!({"user_id": "u"}));
    assert_eq!(variation_of(&out), Some("b"));
    // disablePassthroughRollouts: the first audience match decides; outside its rollout the
    // feature is not bucketed at all.
    let out = run(&config_with(targets.clone(), true), json!({"user_id": "u"}));
    assert_eq!(out["features"], json!({}));
    // Once the schedule has started, the first target wins either way.
    for disable in [false, true] {
        let config = Config::compile(&config_with(targets.clone(), disable), "$").expect("compiles");
        let out = config.bucket(&json!({"user_id": "u"}), 1_718_496_000_000);
        assert_eq!(variation_of(&out), Some("a"));
    }
    // The setting is read with JavaScript truthiness.
    let mut config = config_with(targets, false);
    config["project"]["settings"]["disablePassthroughRollouts"] = json!("yes");
    assert_eq!(run(&config, json!({"user_id": "u"}))["features"], json!({}));
}

#[test]
fn rollout_uses_the_rollout_hash() {
    // Reference values for target "target-1": murmur3(user + "_rollout", seed) / (2^32 - 1) is
    // 0.8978 for user-1 and 0.0259 for user-3.
    let mut t = all_target("target-1", "a");
    t["rollout"] = json!({"type": "gradual", "startPercentage": 0.5, "startDate": "2024-06-01T00:00:00Z"});
    let config = config_with(json!([t]), true);
    assert_eq!(variation_of(&run(&config, json!({"user_id": "user-3"}))), Some("a"));
    assert_eq!(variation_of(&run(&config, json!({"user_id": "user-1"}))), None);
}

#[test]
fn distribution_is_walked_in_descending_variation_order() {
    // Reference bucketing hashes for target "target-1": user-2 0.4872, user-1 0.5520.
    let t = json!({"_id": "target-1", "_audience": {"_id": "x", "filters": {"operator": "and",
        "filters": [{"type": "all"}]}},
        "distribution": [{"_variation": "a", "percentage": 0.5}, {"_variation": "b", "percentage": 0.5}]});
    let config = config_with(json!([t]), false);
    // Sorted: b (0..0.5) then a (0.5..1), whatever the config order.
    assert_eq!(variation_of(&run(&config, json!({"user_id": "user-2"}))), Some("b"));
    assert_eq!(variation_of(&run(&config, json!({"user_id": "user-1"}))), Some("a"));
    // Character codes are UTF-16 code units: U+FF61 sorts above U+1F4A5 (a surrogate pair).
    assert_eq!(cmp_utf16("\u{ff61}", "\u{1f4a5}"), std::cmp::Ordering::Greater);
    assert_eq!(cmp_utf16("b", "ab"), std::cmp::Ordering::Greater);
    assert_eq!(cmp_utf16("a", "ab"), std::cmp::Ordering::Less);
}

#[test]
fn distribution_edges() {
    let target = |dist: Value| {
        let mut cfg = config_with(
            json!([{"_id": "t", "_audience": {"_id": "x", "filters": {"operator": "and",
                "filters": [{"type": "all"}]}}, "distribution": dist}]),
            false,
        );
        cfg["features"][0]["variations"].as_array_mut().expect("array").push(variation("c", json!("C")));
        let config = Config::compile(&cfg, "$").expect("compiles");
        config.features[0].targets[0].clone()
    };
    let t = target(json!([{"_variation": "a", "percentage": 0.25}, {"_variation": "c", "percentage": 0.75}]));
    // c then a; the bounds: [0, 0.75) -> c, [0.75, 1] -> a (a hash of exactly 1 included).
    assert_eq!(t.pick(0.0), Some(2));
    assert_eq!(t.pick(0.7499), Some(2));
    assert_eq!(t.pick(0.75), Some(0));
    assert_eq!(t.pick(1.0), Some(0));
    // A zero share is never picked.
    let t = target(json!([{"_variation": "a", "percentage": 1}, {"_variation": "c", "percentage": 0}]));
    assert_eq!(t.pick(0.0), Some(0));
    assert_eq!(t.pick(1.0), Some(0));
    // Running totals a hair below 1 leave a hash of 1 unassigned, as in the reference.
    let t = target(json!([
        {"_variation": "a", "percentage": 0.1}, {"_variation": "b", "percentage": 0.2},
        {"_variation": "c", "percentage": 0.7}]));
    let total = t.distribution.last().map(|d| d.0);
    if total.is_some_and(|t| t < 1.0) {
        assert_eq!(t.pick(1.0), None);
    }
}

#[test]
fn bucketing_key_values() {
    let value = |user: Value, key: Option<&str>| {
        let user = user.as_object().cloned().unwrap_or_default();
        bucketing_value(&user, key).into_owned()
    };
    let k = Some("orgId");
    for falsy in [json!(0), json!(false), json!(""), Value::Null, json!(-0.0)] {
        assert_eq!(value(json!({"customData": {"orgId": falsy}}), k), "null", "{falsy}");
    }
    assert_eq!(value(json!({"user_id": "u"}), k), "null");
    assert_eq!(value(json!({"customData": {"orgId": {}}}), k), "null");
    assert_eq!(value(json!({"customData": {"orgId": [1]}}), k), "null");
    assert_eq!(value(json!({"customData": {"orgId": 42}}), k), "42");
    assert_eq!(value(json!({"customData": {"orgId": 10.0}}), k), "10");
    assert_eq!(value(json!({"customData": {"orgId": 1e21}}), k), "1e+21");
    assert_eq!(value(json!({"customData": {"orgId": 1.5e-7}}), k), "1.5e-7");
    assert_eq!(value(json!({"customData": {"orgId": true}}), k), "true");
    assert_eq!(value(json!({"customData": {"orgId": "acme"}}), k), "acme");
    // A falsy customData value falls back to privateCustomData.
    assert_eq!(value(json!({"customData": {"orgId": ""}, "privateCustomData": {"orgId": "p"}}), k), "p");
    assert_eq!(value(json!({"customData": {"orgId": "c"}, "privateCustomData": {"orgId": "p"}}), k), "c");
    // Without a bucketing key (or with "user_id"): the user id.
    assert_eq!(value(json!({"user_id": "user-9"}), None), "user-9");
    assert_eq!(value(json!({"user_id": ""}), None), "");
    assert_eq!(value(json!({"user_id": 7}), None), "7");
    assert_eq!(value(json!({}), None), "null");
    assert_eq!(value(json!({"user_id": null}), None), "null");

    // End to end: "null" buckets like a user whose id is "null" (reference hash 0.9609 for
    // target-1, so with a 50/50 split on a/b the variation is a).
    let t = json!({"_id": "target-1", "_audience": {"_id": "x", "filters": {"operator": "and",
        "filters": [{"type": "all"}]}}, "bucketingKey": "orgId",
        "distribution": [{"_variation": "a", "percentage": 0.5}, {"_variation": "b", "percentage": 0.5}]});
    let config = config_with(json!([t]), false);
    for user in [json!({"user_id": "x", "customData": {"orgId": 0}}), json!({"user_id": "y"})] {
        assert_eq!(variation_of(&run(&config, user)), Some("a"));
    }
}

fn full_config() -> Value {
    json!({
      "project": {"_id": "p1", "key": "proj", "a0_organization": "org_1",
        "settings": {"disablePassthroughRollouts": false, "optIn": {"enabled": true}}, "extra": 1},
      "environment": {"_id": "e1", "key": "production", "extra": 2},
      "audiences": {
        "aud-pro": {"filters": {"operator": "and", "filters": [
          {"type": "user", "subType": "customData", "comparator": "=", "dataKey": "plan",
           "dataKeyType": "String", "values": ["pro"]},
          {"type": "user", "subType": "country", "comparator": "exist", "values": []}]}}
      },
      "features": [
        {"_id": "f1", "key": "checkout", "type": "release", "settings": {"optInEnabled": true},
         "variations": [
           {"_id": "va", "key": "control", "name": "Control",
            "variables": [{"_var": "x1", "value": false}, {"_var": "x2", "value": "old"}]},
           {"_id": "vb", "key": "treatment", "name": "Treatment",
            "variables": [{"_var": "x1", "value": true}, {"_var": "x2", "value": "new"}]}],
         "configuration": {"_id": "c1", "targets": [
           {"_id": "t-optin", "_audience": {"_id": "a0", "filters": {"operator": "and",
              "filters": [{"type": "optIn"}]}},
            "distribution": [{"_variation": "vb", "percentage": 1}]},
           {"_id": "t-pro", "_audience": {"_id": "a1", "filters": {"operator": "or", "filters": [
               {"type": "audienceMatch", "comparator": "=", "_audiences": ["aud-pro"]}]}},
            "rollout": {"type": "gradual", "startPercentage": 0.5,
              "startDate": "2024-06-01T00:00:00.000Z",
              "stages": [{"type": "linear", "date": "2024-06-30T00:00:00.000Z", "percentage": 1}]},
            "distribution": [{"_variation": "va", "percentage": 0.5}, {"_variation": "vb", "percentage": 0.5}]},
           {"_id": "t-all", "_audience": {"_id": "a2", "filters": {"operator": "and",
              "filters": [{"type": "all"}]}},
            "distribution": [{"_variation": "va", "percentage": 1}], "bucketingKey": "orgId"}]}}
      ],
      "variables": [
        {"_id": "x1", "key": "new-checkout", "type": "Boolean", "value": "shadowed", "_feature": "old"},
        {"_id": "x2", "key": "checkout-copy", "type": "String"}]
    })
}

#[test]
fn full_output_matches_reference() {
    let config = Config::compile(&full_config(), "$").expect("compiles");
    let out = config.bucket(&json!({"user_id": "u-2", "optIns": {"f1": true}}), NOW);
    let eval = json!({"reason": "TARGETING_MATCH", "details": "Opt-In", "target_id": "t-optin"});
    let expected = json!({
        "project": {"_id": "p1", "key": "proj", "a0_organization": "org_1",
            "settings": {"disablePassthroughRollouts": false, "optIn": {"enabled": true}}},
        "environment": {"_id": "e1", "key": "production"},
        "features": {"checkout": {"_id": "f1", "key": "checkout", "type": "release",
            "_variation": "vb", "variationName": "Treatment", "variationKey": "treatment",
            "settings": {"optInEnabled": true}, "eval": eval}},
        "featureVariationMap": {"f1": "vb"},
        "variableVariationMap": {},
        "variables": {
            "new-checkout": {"_id": "x1", "key": "new-checkout", "type": "Boolean", "value": true,
                "_feature": "f1", "eval": eval},
            "checkout-copy": {"_id": "x2", "key": "checkout-copy", "type": "String",
                "_feature": "f1", "value": "new", "eval": eval}}
    });
    assert_eq!(out, expected);
    // Key order is the reference's too.
    assert_eq!(out.to_string(), expected.to_string());

    // Reference: u-0 passes t-pro's rollout (75% at NOW) and gets va; u-1 does not and falls
    // through to t-all; u-2 passes and gets vb.
    let pro = |id: &str| json!({"user_id": id, "country": "DE", "customData": {"plan": "pro"}});
    let split = "Random Distribution | Rollout | Audience Match -> Custom Data -> plan AND Country";
    let out = config.bucket(&pro("u-0"), NOW);
    assert_eq!(out["features"]["checkout"]["_variation"], "va");
    assert_eq!(out["features"]["checkout"]["eval"], json!({"reason": "SPLIT", "details": split, "target_id": "t-pro"}));
    let out = config.bucket(&pro("u-1"), NOW);
    assert_eq!(
        out["features"]["checkout"]["eval"],
        json!({"reason": "TARGETING_MATCH", "details": "All Users", "target_id": "t-all"})
    );
    assert_eq!(config.bucket(&pro("u-2"), NOW)["features"]["checkout"]["_variation"], "vb");
    // Without opt-in enabled on the project the optIn target never matches.
    let mut no_opt_in = full_config();
    no_opt_in["project"]["settings"]["optIn"]["enabled"] = json!(false);
    let out = run(&no_opt_in, json!({"user_id": "u-2", "optIns": {"f1": true}}));
    assert_eq!(out["features"]["checkout"]["eval"]["target_id"], "t-all");
}

#[test]
fn reasons_follow_the_reference() {
    let reason_of = |filters: Value, user: Value| -> String {
        let t = json!({"_id": "t", "_audience": {"_id": "x", "filters": filters},
            "distribution": [{"_variation": "a", "percentage": 1}]});
        let out = run(&config_with(json!([t]), false), user);
        out["features"]["feat"]["eval"]["details"].as_str().unwrap_or("<none>").to_owned()
    };
    let country = json!({"type": "user", "subType": "country", "comparator": "exist"});
    let email = json!({"type": "user", "subType": "email", "comparator": "exist"});
    let user = json!({"user_id": "u", "country": "US", "email": "e"});
    assert_eq!(reason_of(json!({"operator": "and", "filters": [country, email]}), user.clone()), "Country AND Email");
    // A trailing " AND " stays when a later filter adds nothing.
    assert_eq!(
        reason_of(
            json!({"operator": "and", "filters": [country, {"operator": "or", "filters": [email]}]}),
            user.clone()
        ),
        "Country AND "
    );
    assert_eq!(reason_of(json!({"operator": "and", "filters": [country, {"type": "all"}]}), user.clone()), "All Users");
    assert_eq!(reason_of(json!({"operator": "or", "filters": [{"type": "optIn"}, email]}), user.clone()), "Email");
    assert_eq!(
        reason_of(
            json!({"operator": "or", "filters": [{"type": "optIn"}, {"operator": "and", "filters": [email]}]}),
            user.clone()
        ),
        "Not Opt-In"
    );
    // Without an operator every filter must pass, but the reason is the last one's.
    assert_eq!(reason_of(json!({"filters": [country, email]}), user.clone()), "Email");
    assert_eq!(
        reason_of(
            json!({"operator": "and", "filters": [{"type": "user", "subType": "customData",
            "comparator": "!exist", "dataKey": "tenant"}]}),
            user
        ),
        "Custom Data -> tenant"
    );
}

#[test]
fn audience_match() {
    let config = |comparator: &str, ids: Value| {
        let mut cfg = config_with(
            json!([{"_id": "t", "_audience": {"_id": "x", "filters": {"operator": "and", "filters": [
                {"type": "audienceMatch", "comparator": comparator, "_audiences": ids}]}},
                "distribution": [{"_variation": "a", "percentage": 1}]}]),
            false,
        );
        cfg["audiences"] = json!({
            "us": {"filters": {"operator": "and", "filters": [
                {"type": "user", "subType": "country", "comparator": "=", "values": ["US"]}]}},
            "pro": {"filters": {"operator": "and", "filters": [
                {"type": "audienceMatch", "comparator": "=", "_audiences": ["us"]},
                {"type": "user", "subType": "customData", "comparator": "=", "dataKey": "plan", "values": ["pro"]}]}}
        });
        Config::compile(&cfg, "$").expect("compiles")
    };
    let us_pro = json!({"user_id": "u", "country": "US", "customData": {"plan": "pro"}});
    let ca = json!({"user_id": "u", "country": "CA"});
    let details = |c: &Config, u: &Value| c.bucket(u, NOW)["features"]["feat"]["eval"]["details"].clone();
    let eq = config("=", json!(["pro"]));
    // Reference: an audienceMatch overwrites an `and` group's reason without a separator.
    assert_eq!(details(&eq, &us_pro), "Audience Match -> Audience Match -> CountryCustom Data -> plan");
    assert_eq!(details(&eq, &ca), Value::Null);
    let ne = config("!=", json!(["pro", "us"]));
    assert_eq!(details(&ne, &ca), "Not in Audience");
    assert_eq!(details(&ne, &us_pro), Value::Null);
    // An unknown audience id fails the filter when it is reached, whatever the comparator.
    assert_eq!(details(&config("!=", json!(["nope"])), &ca), Value::Null);
    assert_eq!(details(&config("=", json!(["us", "nope"])), &us_pro), "Audience Match -> Country");
    assert_eq!(details(&config("=", json!(["nope", "us"])), &us_pro), Value::Null);
    assert_eq!(details(&config("!=", json!([])), &ca), "Not in Audience");
}

#[test]
fn config_compile_error_paths() {
    let good = full_config();
    assert!(Config::compile(&good, "$").is_ok());
    let err = |edit: &dyn Fn(&mut Value)| {
        let mut cfg = full_config();
        edit(&mut cfg);
        Config::compile(&cfg, "$.devcycle").expect_err("must fail").path
    };
    let target = "$.devcycle.features[0].configuration.targets";
    assert_eq!(err(&|c| *c = json!([])), "$.devcycle");
    assert_eq!(err(&|c| c["project"] = json!(null)), "$.devcycle.project");
    assert_eq!(err(&|c| c["project"]["settings"] = json!(1)), "$.devcycle.project.settings");
    assert_eq!(err(&|c| c["environment"] = json!("prod")), "$.devcycle.environment");
    assert_eq!(err(&|c| c["audiences"] = json!([])), "$.devcycle.audiences");
    assert_eq!(
        err(&|c| c["audiences"]["aud-pro"]["filters"]["filters"][0]["comparator"] = json!("is")),
        "$.devcycle.audiences[\"aud-pro\"].filters.filters[0].comparator"
    );
    assert_eq!(err(&|c| c["features"] = json!({})), "$.devcycle.features");
    assert_eq!(err(&|c| c["features"][0]["_id"] = json!(1)), "$.devcycle.features[0]._id");
    assert_eq!(err(&|c| c["features"][0]["variations"] = json!(null)), "$.devcycle.features[0].variations");
    assert_eq!(
        err(&|c| c["features"][0]["variations"][1]["variables"][0]["_var"] = json!("x9")),
        "$.devcycle.features[0].variations[1].variables[0]._var"
    );
    assert_eq!(err(&|c| c["features"][0]["configuration"]["targets"] = json!(null)), target.to_owned());
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["distribution"][1]["percentage"] = json!("0.5")),
        format!("{target}[1].distribution[1].percentage")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["distribution"][1]["percentage"] = json!(1.5)),
        format!("{target}[1].distribution[1].percentage")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["distribution"][1]["percentage"] = json!(0.4)),
        format!("{target}[1].distribution")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["distribution"] = json!([])),
        format!("{target}[1].distribution")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["distribution"][0]["_variation"] = json!("vz")),
        format!("{target}[1].distribution[0]._variation")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["rollout"]["startDate"] = json!("June 1st")),
        format!("{target}[1].rollout.startDate")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][1]["rollout"] = json!(true)),
        format!("{target}[1].rollout")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][2]["bucketingKey"] = json!(3)),
        format!("{target}[2].bucketingKey")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][0]["_audience"] = json!(null)),
        format!("{target}[0]._audience")
    );
    assert_eq!(
        err(&|c| c["features"][0]["configuration"]["targets"][0]["_audience"]["filters"]["filters"][0]["type"] =
            json!("someone")),
        format!("{target}[0]._audience.filters.filters[0].type")
    );
    assert_eq!(err(&|c| c["variables"][1]["key"] = json!(null)), "$.devcycle.variables[1].key");
    let mut deep = json!(1);
    for _ in 0..200 {
        deep = json!([deep]);
    }
    assert_eq!(
        err(&|c| c["features"][0]["variations"][0]["variables"][0]["value"] = deep.clone()),
        "$.devcycle.features[0].variations[0].variables[0].value"
    );
    // Missing optional parts are fine.
    let mut cfg = full_config();
    for k in ["audiences", "environment", "variables"] {
        cfg.as_object_mut().map(|o| o.remove(k));
    }
    cfg["features"][0]["variations"] = json!([{"_id": "va", "variables": []}, {"_id": "vb", "variables": []}]);
    cfg["features"][0]["configuration"]["targets"][1]["_audience"]["filters"] =
        json!({"operator": "or", "filters": []});
    assert!(Config::compile(&cfg, "$").is_ok());
}

#[test]
fn audience_cycles_and_depth() {
    let mut cfg = full_config();
    cfg["audiences"] = json!({
        "a": {"filters": {"operator": "and", "filters": [{"type": "audienceMatch", "comparator": "=", "_audiences": ["b"]}]}},
        "b": {"filters": {"operator": "and", "filters": [{"type": "audienceMatch", "comparator": "!=", "_audiences": ["a"]}]}}
    });
    let err = Config::compile(&cfg, "$").expect_err("cycle");
    assert!(err.message.contains("cycle"), "{err}");
    cfg["audiences"] = json!({"self": {"filters": {"operator": "and", "filters": [
        {"type": "audienceMatch", "comparator": "=", "_audiences": ["self"]}]}}});
    assert!(Config::compile(&cfg, "$").is_err());

    // A chain of audiences two levels deep each: 31 of them fit, 33 do not.
    let chain = |n: usize| {
        let mut audiences = Map::new();
        for i in 0..n {
            let filters = if i + 1 < n {
                json!({"operator": "and", "filters": [
                    {"type": "audienceMatch", "comparator": "=", "_audiences": [format!("a{}", i + 1)]}]})
            } else {
                json!({"operator": "and", "filters": [{"type": "all"}]})
            };
            audiences.insert(format!("a{i}"), json!({"filters": filters}));
        }
        let mut cfg = full_config();
        cfg["audiences"] = Value::Object(audiences);
        cfg["features"][0]["configuration"]["targets"][1]["_audience"]["filters"]["filters"][0]["_audiences"] =
            json!(["a0"]);
        cfg
    };
    let ok = Config::compile(&chain(31), "$").expect("31 audiences deep compiles");
    let out = ok.bucket(&json!({"user_id": "u-0"}), NOW);
    assert_eq!(out["features"]["checkout"]["eval"]["target_id"], "t-pro");
    let err = Config::compile(&chain(33), "$").expect_err("too deep");
    assert!(err.message.contains("nested deeper"), "{err}");
}

#[test]
fn audience_results_are_shared_but_opt_in_is_per_feature() {
    // Two features, one audience with an optIn filter: opt-in must be evaluated per feature.
    let mut cfg = full_config();
    cfg["audiences"] = json!({"opted": {"filters": {"operator": "and", "filters": [{"type": "optIn"}]}}});
    let mut second = cfg["features"][0].clone();
    second["_id"] = json!("f2");
    second["key"] = json!("second");
    let targets = json!([{"_id": "t", "_audience": {"_id": "x", "filters": {"operator": "and", "filters": [
        {"type": "audienceMatch", "comparator": "=", "_audiences": ["opted"]}]}},
        "distribution": [{"_variation": "vb", "percentage": 1}]}]);
    cfg["features"][0]["configuration"]["targets"] = targets.clone();
    second["configuration"]["targets"] = targets;
    cfg["features"].as_array_mut().expect("array").push(second);
    let config = Config::compile(&cfg, "$").expect("compiles");
    let out = config.bucket(&json!({"user_id": "u", "optIns": {"f2": true}}), NOW);
    assert_eq!(
        out["features"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["second".to_owned()])
    );
    assert_eq!(out["features"]["second"]["eval"]["details"], "Audience Match -> Opt-In");
}

#[test]
fn compiled_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Config>();
    assert_send_sync::<UserFilter>();
}

#[test]
fn one_shot_errors() {
    assert!(matches!(bucket(&full_config(), &json!("user"), NOW), Err(EvalError::Invalid(_))));
    assert!(matches!(bucket(&json!({}), &json!({}), NOW), Err(EvalError::Invalid(_))));
    // Config::bucket treats a non-object user as {}.
    let config = Config::compile(&full_config(), "$").expect("compiles");
    let out = config.bucket(&json!(null), NOW);
    assert_eq!(out["features"]["checkout"]["eval"]["target_id"], "t-all");
}

#[test]
fn fifty_fifty_split_is_even() {
    let t = json!({"_id": "stats-target", "_audience": {"_id": "x", "filters": {"operator": "and",
        "filters": [{"type": "all"}]}},
        "distribution": [{"_variation": "a", "percentage": 0.5}, {"_variation": "b", "percentage": 0.5}]});
    let config = Config::compile(&config_with(json!([t]), false), "$").expect("compiles");
    let n = 100_000;
    let mut a = 0usize;
    for i in 0..n {
        let out = config.bucket(&json!({"user_id": format!("user-{i}")}), NOW);
        match variation_of(&out) {
            Some("a") => a += 1,
            Some("b") => {}
            other => panic!("unexpected variation {other:?}"),
        }
    }
    let share = a as f64 / n as f64;
    assert!((share - 0.5).abs() < 0.01, "share of a: {share}");
}

mod property {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            (-2.0f64..2.0).prop_map(|f| json!(f)),
            prop::sample::select(vec![
                "",
                "=",
                "!=",
                ">",
                ">=",
                "<",
                "<=",
                "exist",
                "!exist",
                "contain",
                "!contain",
                "startWith",
                "!startWith",
                "endWith",
                "!endWith",
                "and",
                "or",
                "all",
                "user",
                "optIn",
                "audienceMatch",
                "user_id",
                "email",
                "country",
                "appVersion",
                "platformVersion",
                "customData",
                "ip",
                "1.2.3",
                "1.2.3-beta",
                "2024-06-14",
                "2024-06-14T08:00:00Z",
                "schedule",
                "gradual",
                "stepped",
                "linear",
                "discrete",
                "a",
                "b",
                "aud",
                "k",
                "日本",
                "💥",
            ])
            .prop_map(|s| json!(s)),
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(vec!["k", "a", "x", "values"]), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    /// Values that are usually of the right shape for `field`, sometimes anything.
    fn field(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
        prop_oneof![60 => good, 1 => any_json()].boxed()
    }

    fn filter_node() -> impl Strategy<Value = Value> {
        let leaf = (
            field(prop::sample::select(vec!["user", "all", "optIn", "audienceMatch"]).prop_map(|s| json!(s))),
            field(
                prop::sample::select(vec!["country", "appVersion", "customData", "email", "ip"]).prop_map(|s| json!(s)),
            ),
            field(
                prop::sample::select(vec![
                    "=",
                    "!=",
                    "=",
                    "!=",
                    ">",
                    "<=",
                    "exist",
                    "contain",
                    "!startWith",
                    "endWith",
                ])
                .prop_map(|s| json!(s)),
            ),
            field(prop::collection::vec(leaf(), 0..4).prop_map(Value::Array)),
            field(prop::sample::select(vec!["k", "a"]).prop_map(|s| json!(s))),
            field(
                prop::collection::vec(prop::sample::select(vec!["aud", "a", "missing"]).prop_map(|s| json!(s)), 0..3)
                    .prop_map(Value::Array),
            ),
        )
            .prop_map(|(t, st, cmp, values, key, auds)| {
                let cmp = if t == "audienceMatch" && cmp != "=" && cmp != "!=" { json!("=") } else { cmp };
                json!({"type": t, "subType": st, "comparator": cmp, "values": values,
                    "dataKey": key, "_audiences": auds})
            });
        leaf.prop_recursive(3, 16, 4, |inner| {
            (field(prop::sample::select(vec!["and", "or"]).prop_map(|s| json!(s))), prop::collection::vec(inner, 0..4))
                .prop_map(|(op, filters)| json!({"operator": op, "filters": filters}))
        })
    }

    fn rollout() -> impl Strategy<Value = Value> {
        let date = prop_oneof![
            30 => (0i64..40).prop_map(|d| json!(format!("2024-06-{:02}T12:00:00.000Z", d % 28 + 1))),
            1 => any_json()
        ];
        (
            field(prop::sample::select(vec!["schedule", "gradual", "stepped"]).prop_map(|s| json!(s))),
            date.clone(),
            field((0.0f64..1.0).prop_map(|f| json!(f))),
            prop::collection::vec(
                (
                    field(prop::sample::select(vec!["linear", "discrete"]).prop_map(|s| json!(s))),
                    date,
                    field((0.0f64..1.0).prop_map(|f| json!(f))),
                )
                    .prop_map(|(t, d, p)| json!({"type": t, "date": d, "percentage": p})),
                0..3,
            ),
        )
            .prop_map(|(t, d, p, stages)| json!({"type": t, "startDate": d, "startPercentage": p, "stages": stages}))
    }

    fn target() -> impl Strategy<Value = Value> {
        (
            filter_node(),
            prop::option::of(field(rollout().boxed())),
            prop_oneof![10 => Just(0usize), 10 => Just(1), 1 => Just(2)],
            field(prop::sample::select(vec!["user_id", "k", ""]).prop_map(|s| json!(s))),
        )
            .prop_map(|(filters, rollout, split, key)| {
                let distribution = match split {
                    0 => json!([{"_variation": "a", "percentage": 1}]),
                    1 => json!([{"_variation": "a", "percentage": 0.5}, {"_variation": "b", "percentage": 0.5}]),
                    _ => json!([{"_variation": "b", "percentage": 0.25}, {"_variation": "a", "percentage": "x"}]),
                };
                let mut t = json!({"_id": "t", "_audience": {"filters": {"operator": "or", "filters": [filters]}},
                    "distribution": distribution, "bucketingKey": key});
                if let Some(r) = rollout {
                    t["rollout"] = r;
                }
                t
            })
    }

    fn config() -> impl Strategy<Value = Value> {
        (prop::collection::vec(target(), 0..4), filter_node(), any::<bool>(), prop::option::of(any_json())).prop_map(
            |(targets, audience, disable, noise)| {
                let mut cfg = config_with(Value::Array(targets), disable);
                cfg["audiences"] = json!({"aud": {"filters": {"operator": "and", "filters": [audience]}}});
                if let Some(noise) = noise {
                    cfg["features"][0]["settings"] = noise;
                }
                cfg
            },
        )
    }

    fn user() -> impl Strategy<Value = Value> {
        (
            field(prop::sample::select(vec!["u1", "u2", ""]).prop_map(|s| json!(s))),
            any_json(),
            any_json(),
            any_json(),
            prop::option::of(prop::collection::vec((prop::sample::select(vec!["k", "a"]), leaf()), 0..3)),
        )
            .prop_map(|(id, country, version, priv_data, custom)| {
                let mut u = json!({"user_id": id, "country": country, "appVersion": version,
                    "privateCustomData": priv_data, "optIns": {"f1": true}});
                if let Some(c) = custom {
                    u["customData"] = Value::Object(c.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
                }
                u
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_configs_and_users_never_panic(cfg in config(), user in user(), dt in -40i64..40) {
            let now = NOW + dt * 86_400_000 / 4;
            match Config::compile(&cfg, "$") {
                Ok(config) => {
                    let out = config.bucket(&user, now);
                    prop_assert!(out["features"].is_object());
                    prop_assert!(out["variables"].is_object());
                }
                Err(e) => prop_assert!(e.path.starts_with('$')),
            }
        }

        #[test]
        fn arbitrary_json_never_panics(cfg in any_json(), node in any_json(), user in any_json()) {
            let _ = Config::compile(&cfg, "$");
            let _ = bucket(&cfg, &user, NOW);
            if let Ok(f) = UserFilter::compile(&node, "$") {
                let _ = f.matches(&user);
                let _ = f.matches_in_feature(&user, "f1", true);
            }
        }

        #[test]
        fn filter_nodes_never_panic(node in filter_node(), user in user()) {
            if let Ok(f) = UserFilter::compile(&node, "$") {
                let _ = f.matches(&user);
            }
        }
    }
}
