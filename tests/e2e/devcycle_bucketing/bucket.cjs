// DevCycle's generateBucketedConfig (@devcycle/bucketing) for many users at a frozen clock.
// Usage: node bucket.cjs <input.json>, input {config, users: [DevCycle user], nowMs}
// → JSON array on stdout, per user {feature key: variation key} of the features it is served.
const { readFileSync } = require("node:fs");

const { config, users, nowMs } = JSON.parse(readFileSync(process.argv[2], "utf8"));
// The reference reads the clock with `new Date()` when it checks a rollout.
const RealDate = Date;
class FrozenDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(nowMs);
    else super(...args);
  }
  static now() {
    return nowMs;
  }
}
globalThis.Date = FrozenDate;
const { generateBucketedConfig } = require("@devcycle/bucketing");

// DevCycle's SDKs parse the config's dates into Date objects before bucketing.
for (const feature of config.features) {
  for (const target of feature.configuration.targets) {
    const rollout = target.rollout;
    if (!rollout) continue;
    rollout.startDate = new RealDate(rollout.startDate);
    for (const stage of rollout.stages || []) stage.date = new RealDate(stage.date);
  }
}
const results = users.map((user) => {
  const bucketed = generateBucketedConfig({ config, user });
  return Object.fromEntries(Object.entries(bucketed.features).map(([key, f]) => [key, f.variationKey]));
});
process.stdout.write(JSON.stringify(results), () => process.exit(0));
