//! Incremental snapshots: a new [`Snapshot`] from an old one and the flags that changed.
//!
//! Compiled flags are immutable and behind `Arc`s, and what the whole document contributes
//! (DevCycle config, custom data types, `sdkVisibility`) sits in one shared [`Shared`]. A patch
//! clones the vector of pointers, compiles only the upserted flags against the same `Shared`, and
//! keeps the key index when no flag was added, removed or moved. Field ids only grow (a patch
//! interns into a copy of the old table), so the unchanged flags' compiled filters stay valid.
//!
//! A change to the document-wide members (the DevCycle section, its overrides, custom data types,
//! `sdkVisibility`) is a patch too ([`Snapshot::patch_document`]): only they compile, into a new
//! `Shared`, and the flags they say something about (those linked to a DevCycle feature before or
//! after, and those whose visibility moved) are completed again from a copy of their compiled
//! form. Every other flag is shared as is: its compiled form does not depend on the document.

use super::key_index::KeyIndex;
use super::{compile_entry, devcycle, extras_root, Extras, Flag, Local, Shared, Snapshot};
use crate::edge_devcycle::{self, CustomTypes, DevcycleFlag, Hidden};
use crate::error::RuleError;
use crate::reflag::Strings;
use crate::reflag_sdk;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// One flag as the snapshot store holds it: `{"order": "…", "definition": {…}, …}` (other
/// members ignored). `order` places it among the environment's flags (ascending, then by
/// arrival), so a flag added by a patch lands where a full compile would put it.
pub struct Entry<'a> {
    pub order: Box<str>,
    /// The definition's JSON text, served as is by `GET /features`.
    pub text: Cow<'a, [u8]>,
    /// The definition parsed, when the caller has it; otherwise `text` is parsed when the flag
    /// is compiled (one flag at a time: parsing every entry first would hold every parsed tree,
    /// several times the snapshot's size, at once).
    pub value: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Stored<'a> {
    #[serde(default)]
    order: Option<String>,
    #[serde(borrow)]
    definition: &'a RawValue,
}

impl<'a> Entry<'a> {
    /// An entry from its stored JSON (borrowing the definition's text, checked to be JSON; it is
    /// parsed when compiled).
    pub fn from_stored(bytes: &'a [u8]) -> Result<Self, RuleError> {
        let stored: Stored<'a> =
            serde_json::from_slice(bytes).map_err(|e| RuleError::new("$", format!("invalid flag entry: {e}")))?;
        Ok(Self {
            order: stored.order.unwrap_or_default().into(),
            text: Cow::Borrowed(stored.definition.get().as_bytes()),
            value: None,
        })
    }

    /// The flag key of the definition, without parsing the rest (a patch names a bad upsert by it).
    fn key(&self) -> String {
        #[derive(serde::Deserialize)]
        struct Keyed {
            #[serde(default)]
            key: Option<Value>,
        }
        let key = match &self.value {
            Some(v) => v.get("key").cloned(),
            None => serde_json::from_slice::<Keyed>(&self.text).ok().and_then(|k| k.key),
        };
        key.as_ref().and_then(Value::as_str).unwrap_or_default().to_string()
    }
}

impl Local {
    /// How `GET /features` serves a flag of this definition to Reflag SDKs (before DevCycle
    /// links are known: [`Shared::finish`] makes a linked flag [`Local::Decided`]).
    pub(super) fn of(definition: &Value, strings: &mut Strings) -> Self {
        if let Some(reason) = reflag_sdk::remote_only_reason(definition) {
            Local::Remote(strings.intern(&reason))
        } else if let Some(fixed) = reflag_sdk::normalized(definition) {
            Local::Normalized(serde_json::to_vec(&fixed).unwrap_or_default().into_boxed_slice())
        } else {
            Local::Same
        }
    }
}

impl Shared {
    /// The document-wide members compiled.
    pub(super) fn compile(extras: &Extras<'_>) -> Result<Self, RuleError> {
        Ok(Shared {
            devcycle: match extras.devcycle {
                None | Some(Value::Null) => None,
                Some(cfg) => {
                    let mut config = devcycle::Config::compile(cfg, "$.devcycle")?;
                    config.set_overrides(extras.devcycle_overrides, "$.devcycleOverrides")?;
                    Some(config)
                }
            },
            custom_types: CustomTypes::compile(extras.custom_data_types, "$.customDataTypes")?,
            hidden: edge_devcycle::visibility(extras.sdk_visibility, "$.sdkVisibility")?,
        })
    }

    /// Whether `flag`, completed against another document ([`Shared::finish`]), needs completing
    /// again against this one: it is or becomes DevCycle-decided (a new config needs a new link
    /// even to the same feature), or its visibility changes. Nothing else of a flag depends on
    /// the document.
    fn refinishes(&self, flag: &Flag) -> bool {
        let linked = self.devcycle.as_ref().is_some_and(|cfg| cfg.feature_index(&flag.key).is_some());
        flag.devcycle.is_some() || linked || self.hidden.get(&*flag.key).copied().unwrap_or_default() != flag.hidden
    }

    /// `flag` (completed against another document) completed against this one: what
    /// [`Shared::finish`] set from the old document is undone first.
    fn refinish(&self, flag: &Flag) -> Flag {
        let mut flag = flag.clone();
        flag.devcycle = None;
        flag.hidden = Hidden::default();
        if let Local::Decided(before) = flag.local {
            flag.local = *before; // what it was before DevCycle decided it
        }
        self.finish(flag)
    }

    /// A compiled flag completed with what the document says about it.
    pub(super) fn finish(&self, mut flag: Flag) -> Flag {
        flag.hidden = self.hidden.get(&*flag.key).copied().unwrap_or_default();
        if let Some(cfg) = &self.devcycle {
            if let Some(feature) = cfg.feature_index(&flag.key) {
                let version = flag.has_config().then_some(flag.config_version());
                flag.devcycle = Some(Box::new(DevcycleFlag::link(cfg, feature, version, super::variant_json)));
            }
        }
        // A remote-only reason stands; otherwise DevCycle's bucketing decides a linked flag.
        if flag.devcycle.is_some() && !matches!(flag.local, Local::Remote(_) | Local::Decided(_)) {
            flag.local = Local::Decided(Box::new(std::mem::replace(&mut flag.local, Local::Same)));
        }
        flag.nested = flag.devcycle.is_some() || flag.filters.needs_nested();
        flag
    }
}

impl Snapshot {
    /// This snapshot with `upserts` compiled in (replacing the flags of the same keys, or added
    /// at their `order`) and the flags keyed `removed` left out; `self` is unchanged. An upsert
    /// that does not compile fails the whole patch, naming its key.
    pub fn patch(&self, upserts: Vec<Entry<'_>>, removed: &[&str]) -> Result<Snapshot, RuleError> {
        self.patch_with(None, upserts, removed)
    }

    /// [`Snapshot::patch`] with the document's members beside `features` replaced by `extras` (a
    /// JSON object, as for [`Snapshot::assemble`]): answers exactly as `assemble(extras, …)` of
    /// the same flags would, but compiles only the document-wide members and the upserts. The
    /// flags the new document says nothing different about are shared with `self`.
    pub fn patch_document(
        &self,
        extras: &[u8],
        upserts: Vec<Entry<'_>>,
        removed: &[&str],
    ) -> Result<Snapshot, RuleError> {
        let root = extras_root(extras)?;
        let shared = Shared::compile(&Extras::of(&root))?;
        self.patch_with(Some(shared), upserts, removed)
    }

    /// The patch itself: against `shared` when the document changed, else against `self`'s.
    fn patch_with(
        &self,
        shared: Option<Shared>,
        upserts: Vec<Entry<'_>>,
        removed: &[&str],
    ) -> Result<Snapshot, RuleError> {
        let (shared, mut flags) = match shared {
            None => (Arc::clone(&self.shared), self.flags.clone()),
            Some(shared) => {
                let flags = self
                    .flags
                    .iter()
                    .map(|f| if shared.refinishes(f) { Arc::new(shared.refinish(f)) } else { Arc::clone(f) })
                    .collect();
                (Arc::new(shared), flags)
            }
        };
        let mut fields = self.fields.clone();
        let mut strings = Strings::default();
        let mut compiled = Vec::with_capacity(upserts.len());
        let mut seen = HashMap::with_capacity(upserts.len());
        for entry in upserts {
            let path = format!("$.features[{:?}]", entry.key());
            let flag = compile_entry(&mut fields, &mut strings, entry, &path)?;
            if seen.insert(Arc::clone(&flag.key), ()).is_some() {
                return Err(RuleError::new(format!("{path}.key"), format!("duplicate flag key {:?}", flag.key)));
            }
            compiled.push(Arc::new(shared.finish(flag)));
        }
        let mut drop: Vec<usize> = removed.iter().filter_map(|k| self.position(k)).collect();
        let mut added = Vec::new();
        for flag in compiled {
            match self.position(&flag.key) {
                Some(i) if flags[i].order() == flag.order() => flags[i] = flag,
                Some(i) => {
                    drop.push(i);
                    added.push(flag);
                }
                None => added.push(flag),
            }
        }
        let by_key = if drop.is_empty() && added.is_empty() {
            Arc::clone(&self.by_key)
        } else {
            drop.sort_unstable();
            drop.dedup();
            for i in drop.into_iter().rev() {
                flags.remove(i);
            }
            for flag in added {
                let at = flags.partition_point(|f| f.order() <= flag.order());
                flags.insert(at, flag);
            }
            Arc::new(KeyIndex::of(&flags.iter().map(|f| &*f.key).collect::<Vec<_>>()))
        };
        Ok(Snapshot::from_parts(fields, flags, by_key, shared))
    }

    /// The position of flag `key` in this snapshot's flags.
    fn position(&self, key: &str) -> Option<usize> {
        self.by_key.get(key, |i| &self.flags[i].key)
    }

    /// Whether this snapshot and `other` share the compiled flag `key` (the same allocation):
    /// what a patch left untouched.
    pub fn shares_flag(&self, other: &Snapshot, key: &str) -> bool {
        let mine = self.flag(key);
        let theirs = other.flag(key);
        matches!((mine, theirs), (Some(a), Some(b)) if Arc::ptr_eq(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, Snapshot};
    use crate::snapshot::{Context, Options};
    use serde_json::{json, Value};

    fn entry(order: &str, def: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"order": order, "definition": def, "project": "p"})).unwrap()
    }

    fn flag(key: &str, plan: &str) -> Value {
        json!({"key": key, "targeting": {"version": 1, "rules": [
            {"filter": {"type": "context", "field": "company.plan", "operator": "IS", "values": [plan]}}]}})
    }

    fn entries(raw: &[Vec<u8>]) -> Vec<Entry<'_>> {
        raw.iter().map(|b| Entry::from_stored(b).unwrap()).collect()
    }

    /// `definitions_json` of `s` from the stored entries `raw`.
    fn definitions(s: &Snapshot, raw: &[Vec<u8>]) -> Option<Vec<u8>> {
        let all = entries(raw);
        s.definitions_json(all.iter().map(|e| &*e.text))
    }

    fn answer(s: &Snapshot, plan: &str) -> Value {
        let ctx = json!({"company": {"plan": plan}});
        let opts = Options { enabled_only: false, debug: true, now_ms: 0.0, kind: None };
        let mut out = Vec::new();
        s.evaluate_all(&Context::<&str>::Nested(&ctx), opts, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn keys(s: &Snapshot) -> Vec<&str> {
        s.flag_keys().collect()
    }

    #[test]
    fn patch_equals_a_full_compile_and_reuses_unchanged_flags() {
        let base = [entry("1", flag("a", "x")), entry("2", flag("b", "x")), entry("3", flag("c", "x"))];
        let old = Snapshot::assemble(b"{}", entries(&base)).unwrap();
        let up = [entry("2", flag("b", "y"))];
        let new = old.patch(entries(&up), &[]).unwrap();
        let full = Snapshot::assemble(b"{}", entries(&[base[0].clone(), up[0].clone(), base[2].clone()])).unwrap();
        for plan in ["x", "y", "z"] {
            assert_eq!(answer(&new, plan), answer(&full, plan));
        }
        let stored = [base.as_slice(), up.as_slice()].concat();
        assert!(definitions(&new, &stored).is_some());
        assert_eq!(definitions(&new, &stored), definitions(&full, &stored));
        // The old snapshot compiled another `b`: the store's texts are not its definitions.
        assert_eq!(definitions(&old, &stored), None);
        assert!(definitions(&old, &base).is_some());
        assert!(new.shares_flag(&old, "a") && new.shares_flag(&old, "c"));
        assert!(!new.shares_flag(&old, "b"));
        // The old snapshot still answers as before (requests in flight keep it).
        assert_eq!(answer(&old, "x")["b"]["isEnabled"], json!(true));
        assert_eq!(answer(&new, "x")["b"]["isEnabled"], json!(false));
    }

    #[test]
    fn added_flags_take_their_order_and_removed_ones_go() {
        let base = [entry("1", flag("a", "x")), entry("3", flag("c", "x"))];
        let old = Snapshot::assemble(b"{}", entries(&base)).unwrap();
        let new = old.patch(entries(&[entry("2", flag("b", "x")), entry("4", flag("d", "x"))]), &["a"]).unwrap();
        assert_eq!(keys(&new), ["b", "c", "d"]);
        assert!(new.shares_flag(&old, "c"));
        let full = Snapshot::assemble(
            b"{}",
            entries(&[entry("4", flag("d", "x")), entry("2", flag("b", "x")), base[1].clone()]),
        )
        .unwrap();
        assert_eq!(answer(&new, "x"), answer(&full, "x"));
        let stored = [entry("4", flag("d", "x")), entry("2", flag("b", "x")), base[1].clone()];
        assert!(definitions(&new, &stored).is_some());
        assert_eq!(definitions(&new, &stored), definitions(&full, &stored));
        // Removing an absent key is nothing; re-adding a removed one brings it back in place.
        let back = new.patch(entries(&[base[0].clone()]), &["zz"]).unwrap();
        assert_eq!(keys(&back), ["a", "b", "c", "d"]);
    }

    #[test]
    fn new_context_fields_are_interned_without_disturbing_old_ids() {
        let old = Snapshot::assemble(b"{}", entries(&[entry("1", flag("a", "x"))])).unwrap();
        let other = json!({"key": "b", "targeting": {"version": 2, "rules": [
            {"filter": {"type": "context", "field": "user.tier", "operator": "IS", "values": ["gold"]}}]}});
        let new = old.patch(entries(&[entry("2", other)]), &[]).unwrap();
        let ctx = json!({"company": {"plan": "x"}, "user": {"tier": "gold"}});
        let opts = Options { enabled_only: true, debug: false, now_ms: 0.0, kind: None };
        let mut out = Vec::new();
        new.evaluate_all(&Context::<&str>::Nested(&ctx), opts, &mut out);
        let got: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got.as_object().unwrap().len(), 2, "{got}");
    }

    #[test]
    fn a_bad_upsert_fails_the_patch_and_names_its_key() {
        let old = Snapshot::assemble(b"{}", entries(&[entry("1", flag("a", "x"))])).unwrap();
        let bad = json!({"key": "b", "targeting": {"rules": [{"filter": {"type": "context", "field": "x", "operator": "GT!"}}]}});
        let e = old.patch(entries(&[entry("2", bad)]), &[]).unwrap_err();
        assert!(e.path.starts_with("$.features[\"b\"]"), "{}", e.path);
        let twice = [entry("2", flag("b", "x")), entry("3", flag("b", "y"))];
        assert!(old.patch(entries(&twice), &[]).is_err());
        assert!(Entry::from_stored(b"{\"order\": \"1\"}").is_err());
    }

    #[test]
    fn a_document_change_shares_the_flags_it_says_nothing_about() {
        let raw = [entry("1", flag("a", "x")), entry("2", flag("b", "x")), entry("3", flag("c", "x"))];
        let old = Snapshot::assemble(br#"{"sdkVisibility": {"a": {"client": false}}}"#, entries(&raw)).unwrap();
        let extras = br#"{"sdkVisibility": {"b": {"client": false}}, "customDataTypes": {"n": "Number"}}"#;
        let new = old.patch_document(extras, entries(&[entry("3", flag("c", "y"))]), &[]).unwrap();
        let full =
            Snapshot::assemble(extras, entries(&[raw[0].clone(), raw[1].clone(), entry("3", flag("c", "y"))])).unwrap();
        for plan in ["x", "y"] {
            assert_eq!(answer(&new, plan), answer(&full, plan));
        }
        let hidden: Vec<&str> = new.hidden_from(crate::edge_devcycle::KeyKind::Client).collect();
        assert_eq!(hidden, ["b"]);
        // "a" and "b" changed visibility; "c" was upserted.
        assert!(!new.shares_flag(&old, "a") && !new.shares_flag(&old, "b") && !new.shares_flag(&old, "c"));
        let again = new.patch_document(extras, Vec::new(), &[]).unwrap();
        assert!(["a", "b", "c"].iter().all(|k| again.shares_flag(&new, k)));
        // A document that does not compile fails the patch, naming its node.
        let e = new.patch_document(br#"{"sdkVisibility": []}"#, Vec::new(), &[]).unwrap_err();
        assert_eq!(e.path, "$.sdkVisibility");
        assert!(new.patch_document(b"[]", Vec::new(), &[]).is_err());
    }

    #[test]
    fn shared_parts_apply_to_patched_flags() {
        let extras = br#"{"sdkVisibility": {"b": {"client": false}}}"#;
        let old = Snapshot::assemble(extras, entries(&[entry("1", flag("a", "x"))])).unwrap();
        let new = old.patch(entries(&[entry("2", flag("b", "x"))]), &[]).unwrap();
        let hidden: Vec<&str> = new.hidden_from(crate::edge_devcycle::KeyKind::Client).collect();
        assert_eq!(hidden, ["b"]);
    }
}
