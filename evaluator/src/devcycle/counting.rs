//! Evaluation counts of a DevCycle config ([`crate::counts`]): one counter per feature and
//! variation, bumped for what a route answers (every served feature it shows, or only the one
//! serving the variable asked for). A feature that serves the user nothing is not counted: its
//! variables fall back to the SDK's defaults, which DevCycle does not count as evaluations of
//! the feature either.

use super::answer::Part;
use super::{Config, Eval, Feature, Served, Variation};
use crate::counts::index_in;
use std::collections::HashSet;

impl Config {
    /// Count a route's answer: `served` is every feature serving the user (before `hidden`,
    /// the `_id`s of features hidden from the asking SDK, is applied).
    pub(super) fn count_answered(
        &self,
        served: &[(&Feature, &Variation, Eval<'_>)],
        part: Part<'_>,
        hidden: &HashSet<String>,
    ) {
        let shown = served.iter().filter(|(feature, _, _)| !hidden.contains(&feature.id));
        match part {
            Part::Variable(key) | Part::OfrepFlag(key) => {
                let mut shown = shown;
                if let Some((feature, variation, _)) = shown.find(|(_, v, _)| v.variables.iter().any(|(k, _)| k == key))
                {
                    self.count(feature, variation);
                }
            }
            Part::Config | Part::Variables | Part::Features | Part::Ofrep => {
                for (feature, variation, _) in shown {
                    self.count(feature, variation);
                }
            }
        }
    }

    fn count(&self, feature: &Feature, variation: &Variation) {
        if let Some(f) = index_in(&self.features, feature) {
            if let Some(v) = index_in(&feature.variations, variation) {
                self.counts.hit(f, v);
            }
        }
    }

    /// Count one feature served outside [`Config::answer`] (a DevCycle-decided Reflag flag).
    pub fn count_served(&self, feature: usize, served: Option<&Served>) {
        if let Some(s) = served {
            self.counts.hit(feature, s.variation);
        }
    }

    /// `(feature key, variation key, evaluations)` counted since the last drain.
    pub fn drain_counts(&self) -> Vec<(&str, &str, u32)> {
        let mut out = Vec::new();
        for (f, v, n) in self.counts.drain() {
            let Some(feature) = self.features.get(f) else { continue };
            if let Some(variation) = feature.variations.get(v) {
                out.push((feature.key.as_str(), super::answer::variant_name(variation), n));
            }
        }
        out
    }
}
