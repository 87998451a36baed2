use serde_json::{json, Value};

use super::*;
use crate::error::{MAX_DATA_DEPTH, MAX_VALUE_SIZE};

fn ap(rule: Value, data: Value) -> Value {
    match apply(&rule, &data) {
        Ok(v) => v,
        Err(e) => panic!("{rule} on {data}: {e}"),
    }
}

fn is_budget(r: Result<Value, EvalError>) -> bool {
    matches!(r, Err(EvalError::Budget(_)))
}

/// Drop a deeply nested value without recursing (serde_json's drop is recursive).
fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn range(n: usize) -> Value {
    Value::Array((0..n).map(Value::from).collect())
}

#[test]
fn logic_is_send_and_sync() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Logic>();
}

#[test]
fn truthiness() {
    for f in [json!([]), json!(""), json!(0), json!(0.0), json!(null), json!(false)] {
        assert!(!truthy(&f), "{f}");
    }
    for t in [json!([0]), json!("0"), json!(1), json!(-0.5), json!({}), json!(true)] {
        assert!(truthy(&t), "{t}");
    }
}

#[test]
fn numbers_and_non_finite() {
    assert_eq!(ap(json!({"+": [1, 1]}), json!(null)).to_string(), "2");
    assert_eq!(ap(json!({"*": [1.5, 2]}), json!(null)).to_string(), "3");
    assert_eq!(ap(json!({"/": [1, 4]}), json!(null)), json!(0.25));
    // NaN/Infinity are JavaScript values while evaluating and null in the output.
    assert_eq!(ap(json!({"/": [1, 0]}), json!(null)), json!(null));
    assert_eq!(ap(json!({"max": []}), json!(null)), json!(null));
    assert_eq!(ap(json!({"!!": [{"/": [1, 0]}]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"!!": [{"/": [0, 0]}]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"==": [{"/": [0, 0]}, {"/": [0, 0]}]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"cat": [{"/": [1, 0]}, {"-": ["x"]}]}), json!(null)), json!("InfinityNaN"));
    assert_eq!(ap(json!({"+": ["3.5px", " 1e1x"]}), json!(null)), json!(13.5));
    assert_eq!(ap(json!({"-": ["3.5px", 1]}), json!(null)), json!(null));
    assert_eq!(ap(json!({"*": ["2"]}), json!(null)), json!("2"));
    assert!(matches!(apply(&json!({"*": []}), &json!(null)), Err(EvalError::Invalid(_))));
}

#[test]
fn js_coercions() {
    assert_eq!(ap(json!({"==": [[1], "1"]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"==": [[], false]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"==": [null, 0]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"==": [[1], [1]]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"==": [{"var": "a"}, {"var": "a"}]}), json!({"a": [1]})), json!(true));
    assert_eq!(ap(json!({"<": ["10", "9"]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"<": ["10", 9]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"<": ["\u{ffff}", "😀"]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"<=": [1, 2, 3]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"<": [1, 3, 2]}), json!(null)), json!(false));
    assert_eq!(ap(json!({"in": ["b", "abc"]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"in": [1, ["1", 1]]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"in": ["1", [1]]}), json!(null)), json!(false));
    assert_eq!(
        ap(json!({"cat": ["a", null, [1, null, [2]], 1.5, {"x": 1, "y": 2}]}), json!(null)),
        json!("a1,,21.5[object Object]")
    );
    assert_eq!(ap(json!({"substr": ["héllo😀", -2]}), json!(null)), json!("😀"));
    assert_eq!(ap(json!({"substr": ["jsonlogic", 1, "-5"]}), json!(null)), json!(""));
}

#[test]
fn var_semantics() {
    let data = json!({"a": {"b": null, "c": [10, 20]}, "s": "héllo"});
    assert_eq!(ap(json!({"var": ["a.b", 5]}), data.clone()), json!(null));
    assert_eq!(ap(json!({"var": ["a.b.x", 5]}), data.clone()), json!(5));
    assert_eq!(ap(json!({"var": ["a.z", 5]}), data.clone()), json!(5));
    assert_eq!(ap(json!({"var": "a.c.1"}), data.clone()), json!(20));
    assert_eq!(ap(json!({"var": "a.c.01"}), data.clone()), json!(null));
    assert_eq!(ap(json!({"var": "a.c.length"}), data.clone()), json!(2));
    assert_eq!(ap(json!({"var": "s.1"}), data.clone()), json!("é"));
    assert_eq!(ap(json!({"var": ""}), data.clone()), data);
    assert_eq!(ap(json!({"var": [{"cat": ["a", ".c.", 0]}]}), data.clone()), json!(10));
    assert_eq!(
        ap(json!({"reduce": [[1, 2], {"var": ""}, 0]}), json!(null)),
        json!({"current": 2, "accumulator": {"current": 1, "accumulator": 0}})
    );
    assert_eq!(ap(json!({"map": [{"var": "a.c"}, {"+": [{"var": ""}, 1]}]}), data), json!([11, 21]));
}

#[test]
fn literals_pass_through() {
    assert_eq!(ap(json!({"a": 1, "b": {"var": "x"}}), json!({"x": 2})), json!({"a": 1, "b": {"var": "x"}}));
    assert_eq!(ap(json!({}), json!(null)), json!({}));
    assert_eq!(ap(json!([1, {"var": "x"}, [{"var": "x"}]]), json!({"x": 2})), json!([1, 2, [2]]));
}

#[test]
fn compile_errors_carry_paths() {
    let e = Logic::compile(&json!({"if": [true, {"foo": 1}]}), "$.flags[2].rule").unwrap_err();
    assert_eq!(e.path, "$.flags[2].rule.if[1].foo");
    assert!(e.message.contains("foo"), "{}", e.message);
    let e = Logic::compile(&json!({"==": [{"var": "x"}, {"and": [1, {"a.b": []}]}]}), "$.r").unwrap_err();
    assert_eq!(e.path, "$.r[\"==\"][1].and[1][\"a.b\"]");
    let e = Logic::compile(&json!({"map": [[1], {"oops": {"var": ""}}]}), "$").unwrap_err();
    assert_eq!(e.path, "$.map[1].oops");
    assert!(matches!(apply(&json!({"nope": 1}), &json!(null)), Err(EvalError::Invalid(_))));
}

#[test]
fn depth_limit() {
    let mut rule = json!(true);
    for _ in 0..(MAX_RULE_DEPTH - 1) {
        rule = json!({ "!": rule });
    }
    assert!(Logic::compile(&rule, "$").is_ok());
    let rule = json!({ "!": rule });
    let e = Logic::compile(&rule, "$.rule").unwrap_err();
    assert!(e.path.starts_with("$.rule!") || e.path.starts_with("$.rule[\"!\"]"), "{}", e.path);
    assert!(e.message.contains("deeper"));

    // Very deep input is rejected without recursing through all of it.
    let mut deep = json!(1);
    for _ in 0..5000 {
        deep = Value::Array(vec![deep]);
    }
    assert!(Logic::compile(&deep, "$").is_err());
    drop_deep(deep);
    let mut deep_obj = json!(1);
    for _ in 0..5000 {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), deep_obj);
        m.insert("b".into(), json!(1));
        deep_obj = Value::Object(m);
    }
    assert!(Logic::compile(&deep_obj, "$").is_err());
    drop_deep(deep_obj);
}

#[test]
fn max_depth_rules_run_on_a_small_stack() {
    // Rules at the depth limit, built from different operators, evaluated on a 512 KiB stack.
    let mut rules = Vec::new();
    let mut r = json!({"var": "x"});
    for _ in 0..(MAX_RULE_DEPTH - 2) {
        r = json!({ "!": r });
    }
    rules.push(r);
    let mut r = json!({"var": "x"});
    for i in 0..(MAX_RULE_DEPTH / 2 - 1) {
        r = match i % 4 {
            0 => json!({"if": [r, 1, 2]}),
            1 => json!({"+": [r, 1]}),
            2 => json!({"map": [[1], r]}),
            _ => json!({"==": [r, {"var": "x"}]}),
        };
    }
    rules.push(r);
    for rule in rules {
        let logic = Logic::compile(&rule, "$").unwrap();
        let t = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || logic.eval(&json!({"x": 1}), &mut Budget::default()).is_ok())
            .unwrap();
        assert!(t.join().unwrap());
    }
}

#[test]
fn deep_data_does_not_overflow() {
    let mut deep = json!("leaf");
    for _ in 0..3000 {
        deep = Value::Array(vec![deep]);
    }
    let mut data = serde_json::Map::new();
    data.insert("d".into(), deep);
    let data = Value::Object(data);
    // Returning it would need a deep copy: refused.
    assert!(apply(&json!({"var": "d"}), &data).is_err());
    // Walking, comparing and stringifying it is fine.
    assert_eq!(apply(&json!({"==": [{"var": "d"}, "x"]}), &data), Ok(json!(false)));
    assert!(apply(&json!({"cat": [{"var": "d"}]}), &data).is_ok());
    assert!(apply(&json!({"+": [{"var": "d"}, 1]}), &data).is_ok());
    drop_deep(data);
    let mut shallow = json!(1);
    for _ in 0..(MAX_DATA_DEPTH - 2) {
        shallow = Value::Array(vec![shallow]);
    }
    assert!(apply(&json!({"var": ""}), &shallow).is_ok());
}

#[test]
fn bombs_hit_the_budget() {
    let data = json!({ "r": range(1000) });
    // Nested iteration: 10^9 steps.
    let nested = json!({"map": [{"var": "r"}, {"map": [range(1000), {"map": [range(1000), 1]}]}]});
    let start = std::time::Instant::now();
    assert!(is_budget(apply(&nested, &data)));
    // Exponential growth through merge, through shared nesting, and through cat.
    let merge = json!({"reduce": [{"var": "r"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
    assert!(is_budget(apply(&merge, &data)));
    let nest = json!({"reduce": [{"var": "r"}, [{"var": "accumulator"}, {"var": "accumulator"}], 1]});
    assert!(is_budget(apply(&nest, &data)));
    let cat = json!({"reduce": [{"var": "r"}, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]});
    assert!(is_budget(apply(&cat, &data)));
    let deep = json!({"reduce": [{"var": "r"}, [{"var": "accumulator"}], 1]});
    assert!(is_budget(apply(&deep, &data)));
    // Stringifying a shared structure cannot escape the limits either.
    let wide = json!({"reduce": [range(19), [{"var": "accumulator"}, {"var": "accumulator"}], "abcdefgh"]});
    assert!(is_budget(apply(&json!({"cat": [wide]}), &json!(null))));
    let big_string = json!({"reduce": [range(20), {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "x"]});
    assert!(is_budget(apply(&json!({"map": [range(1000), {"in": ["y", big_string]}]}), &json!(null))));
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "{:?}", start.elapsed());

    // A small budget stops ordinary rules too.
    let logic = Logic::compile(&json!({"map": [{"var": "r"}, {"+": [{"var": ""}, 1]}]}), "$").unwrap();
    assert!(matches!(logic.eval(&data, &mut Budget::new(100)), Err(EvalError::Budget(_))));
    assert!(logic.eval(&data, &mut Budget::default()).is_ok());
    let _ = MAX_VALUE_SIZE;
}

#[test]
fn flagd_string_operators() {
    assert_eq!(ap(json!({"starts_with": [{"var": "e"}, "user@"]}), json!({"e": "user@x.com"})), json!(true));
    assert_eq!(ap(json!({"ends_with": [{"var": "e"}, "@x.com"]}), json!({"e": "user@x.com"})), json!(true));
    assert_eq!(ap(json!({"ends_with": [{"var": "e"}, "@y.com"]}), json!({"e": "user@x.com"})), json!(false));
    assert_eq!(ap(json!({"starts_with": [1, "1"]}), json!(null)), json!(null));
    assert_eq!(ap(json!({"starts_with": ["a"]}), json!(null)), json!(null));
    assert_eq!(ap(json!({"sem_ver": ["1.2.3", "^", "1.9"]}), json!(null)), json!(true));
    assert_eq!(ap(json!({"sem_ver": ["1.2.3", "~", "1.3"]}), json!(null)), json!(false));
}

#[test]
fn fractional_details() {
    let ctx = json!({"targetingKey": "user-1", "$flagd": {"flagKey": "f"}});
    let one = ap(json!({"fractional": [["a", 1], ["b", 1]]}), ctx.clone());
    assert!(one == json!("a") || one == json!("b"));
    // Explicit key equals the shorthand key.
    assert_eq!(ap(json!({"fractional": ["fuser-1", ["a", 1], ["b", 1]]}), json!({})), one);
    assert_eq!(ap(json!({"fractional": [["a", 1.5], ["b", 1]]}), ctx.clone()), json!(null));
    assert_eq!(ap(json!({"fractional": [["a", "1"], ["b", 1]]}), ctx.clone()), json!(null));
    assert_eq!(ap(json!({"fractional": [["a", 1, 2]]}), ctx.clone()), json!(null));
    assert_eq!(ap(json!({"fractional": ["k", "a"]}), ctx.clone()), json!(null));
    assert_eq!(ap(json!({"fractional": ["k", ["a", 3_000_000_000u64]]}), ctx.clone()), json!(null));
    assert_eq!(ap(json!({"fractional": [["a", 1]]}), json!({"targetingKey": "u"})), json!(null));
    assert_eq!(ap(json!({"fractional": ["k", [{"x": 1, "y": 2}]]}), json!({})), json!({"x": 1, "y": 2}));
}

#[test]
fn airborne_operators() {
    let cases = [
        (json!({"jp_ver_gt": ["1.10.0", "1.9.9"]}), true),
        (json!({"jp_ver_gt": ["1.0.0", "1.0.0"]}), false),
        (json!({"jp_ver_ge": ["1.0.0", "v1.0"]}), true),
        (json!({"jp_ver_lt": ["1.0.0-rc.1", "1.0.0"]}), true),
        (json!({"jp_ver_le": ["2", "1.9"]}), false),
        (json!({"jp_ver_eq": ["1.0.0+build", "1.0.0"]}), true),
        (json!({"jp_ver_eq": [1.2, "1.2.0"]}), true),
        (json!({"jp_ver_gt": ["garbage", "1.0.0"]}), false),
        (json!({"jp_ver_lt": ["garbage", "1.0.0"]}), false),
        (json!({"jp_ver_eq": ["1.0.0"]}), false),
        (json!({"jp_ver_gt": [{"var": "v"}, "2.0.0"]}), true),
        (json!({"str_gt": ["b", "a"]}), true),
        (json!({"str_gt": ["B", "a"]}), false),
        (json!({"str_ge": ["a", "a"]}), true),
        (json!({"str_lt": ["10", "9"]}), true),
        (json!({"str_le": ["abc", "ab"]}), false),
        (json!({"str_lt": [10, 9]}), true),
        (json!({"str_gt": [true, "false"]}), true),
        (json!({"str_lt": ["\u{ffff}", "😀"]}), true),
        (json!({"str_gt": ["a"]}), false),
        (json!({"str_ge": [{"var": "name"}, "m"]}), true),
    ];
    let data = json!({"v": "2.1.0", "name": "zed"});
    for (rule, want) in cases {
        assert_eq!(ap(rule.clone(), data.clone()), json!(want), "{rule}");
    }
}

#[test]
fn eval_truthy_matches_eval() {
    let logic = Logic::compile(&json!({"in": [{"var": "c"}, ["US", "CA"]]}), "$").unwrap();
    let mut b = Budget::default();
    assert!(logic.eval_truthy(&json!({"c": "CA"}), &mut b).unwrap());
    assert!(!logic.eval_truthy(&json!({"c": "FR"}), &mut b).unwrap());
    assert!(!Logic::compile(&json!({"/": [0, 0]}), "$").unwrap().eval_truthy(&json!(null), &mut b).unwrap());
}
