#![allow(dead_code)] // shared by the benchmark and the instruction-count example
//! Deterministic benchmark workloads (DESIGN.md section 6): W1 (5 flags), W2 (350 mixed flags)
//! and scale sets, with realistic contexts that differ per request.

use serde_json::{json, Value};

/// A small deterministic generator (SplitMix64), so every run measures the same data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
const COUNTRIES: [&str; 6] = ["DE", "US", "FR", "GB", "JP", "BR"];

fn context_filter(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!({"type": "context", "field": "company.plan", "operator": "ANY_OF", "values": ["pro", "enterprise"]}),
        1 => json!({"type": "context", "field": "user.email", "operator": "CONTAINS", "values": ["@acme"]}),
        2 => {
            json!({"type": "context", "field": "company.seats", "operator": "GT", "values": [format!("{}", rng.below(100))]})
        }
        3 => {
            json!({"type": "context", "field": "user.country", "operator": "IS", "values": [COUNTRIES[rng.below(6) as usize]]})
        }
        4 => {
            json!({"type": "context", "field": "company.createdAt", "operator": "DATE_AFTER", "values": ["2023-06-01"]})
        }
        5 => json!({"type": "context", "field": "user.beta", "operator": "IS_TRUE", "values": []}),
        6 => {
            json!({"type": "context", "field": "company.id", "operator": "NOT_ANY_OF", "values": ["c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-7", "c-8", "c-9"]})
        }
        _ => json!({"type": "context", "field": "user.role", "operator": "SET", "values": []}),
    }
}

fn w2_flag(i: usize, rng: &mut Rng) -> Value {
    let key = format!("flag-{i:04}");
    let filter = match i % 7 {
        0 => context_filter(rng),
        1 => {
            json!({"type": "rolloutPercentage", "partialRolloutAttribute": "user.id", "partialRolloutThreshold": rng.below(100_001)})
        }
        2 => json!({"type": "group", "operator": "and", "filters": [
            context_filter(rng),
            {"type": "rolloutPercentage", "partialRolloutAttribute": "company.id", "partialRolloutThreshold": rng.below(100_001)}
        ]}),
        3 => json!({"type": "group", "operator": "or", "filters": [
            context_filter(rng),
            {"type": "group", "operator": "and", "filters": [context_filter(rng), {"type": "negation", "filter": context_filter(rng)}]}
        ]}),
        4 => {
            json!({"type": "jsonLogic", "rule": {"sem_ver": [{"var": "user.appVersion"}, ">=", format!("{}.{}.0", 1 + rng.below(3), rng.below(10))]}})
        }
        5 => json!({"type": "user", "subType": "country", "comparator": "=", "values": ["DE", "FR"]}),
        _ => json!({"type": "constant", "value": true}),
    };
    let mut flag = json!({"key": key, "targeting": {"version": 1 + i, "rules": [{"filter": filter}]}});
    if i % 5 == 0 {
        flag["config"] = json!({"version": 2, "variants": [
            {"key": "a", "filter": context_filter(rng), "payload": {"color": "blue", "size": 3}},
            {"key": "b", "filter": {"type": "rolloutPercentage", "partialRolloutAttribute": "user.id", "partialRolloutThreshold": 50_000}, "payload": {"color": "red"}},
            {"key": "c", "filter": {"type": "constant", "value": true}, "payload": null}
        ]});
    }
    flag
}

/// W2: 350 flags with context operators, semver, rollouts, nested groups and configs.
pub fn w2() -> Value {
    let mut rng = Rng::new(2);
    json!({"features": (0..350).map(|i| w2_flag(i, &mut rng)).collect::<Vec<_>>()})
}

/// W1: 5 flags reading 2 context attributes.
pub fn w1() -> Value {
    json!({"features": [
        {"key": "w1-a", "targeting": {"version": 1, "rules": [{"filter": {"type": "context", "field": "user.id", "operator": "IS", "values": ["u-7"]}}]}},
        {"key": "w1-b", "targeting": {"version": 1, "rules": [{"filter": {"type": "context", "field": "company.plan", "operator": "ANY_OF", "values": ["pro", "enterprise"]}}]}},
        {"key": "w1-c", "targeting": {"version": 1, "rules": [{"filter": {"type": "rolloutPercentage", "partialRolloutAttribute": "user.id", "partialRolloutThreshold": 30000}}]}},
        {"key": "w1-d", "targeting": {"version": 1, "rules": [{"filter": {"type": "negation", "filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": ["free"]}}}]}},
        {"key": "w1-e", "targeting": {"version": 1, "rules": [{"filter": {"type": "constant", "value": true}}]}}
    ]})
}

/// `n` flags of the W2 mix (scale sets).
pub fn scale(n: usize) -> Value {
    let mut rng = Rng::new(n as u64);
    json!({"features": (0..n).map(|i| w2_flag(i, &mut rng)).collect::<Vec<_>>()})
}

/// A realistic nested context, unique per `i`.
pub fn context(i: u64) -> Value {
    let mut rng = Rng::new(i);
    json!({
        "user": {"id": format!("user-{i}"), "email": format!("user{i}@{}", if i % 3 == 0 { "acme.com" } else { "example.org" }),
                 "country": COUNTRIES[rng.below(6) as usize], "appVersion": format!("{}.{}.{}", 1 + rng.below(3), rng.below(10), rng.below(20)),
                 "beta": i % 2 == 0, "role": "admin"},
        "company": {"id": format!("c-{}", rng.below(50)), "plan": PLANS[rng.below(4) as usize], "seats": rng.below(200),
                    "createdAt": format!("2023-{:02}-15", 1 + rng.below(12))}
    })
}

/// The same context as flattened `context.*` query pairs.
pub fn flat_context(i: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    evaluator::context::flatten_into(&context(i), &|_| true, &mut |k, v| out.push((k.to_owned(), v.into_owned())));
    out
}
