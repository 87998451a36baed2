// Runs DevCycle's own SDKs, unmodified, against the edge (only their base-URL options changed)
// and prints, per user, the variables each of them serves:
//   local:     @devcycle/nodejs-server-sdk, local bucketing (WASM) over GET /config/v2/server/{key}.json
//   cloud:     the same SDK with enableCloudBucketing, over POST /v1/variables and /v1/features
//   client:    @devcycle/js-client-sdk (under Node), over GET /v1/sdkConfig
//   reference: @devcycle/bucketing's generateBucketedConfig over the config the edge serves
// Each SDK also evaluates one variable and tracks one custom event, and flushes them
// (/v1/events/batch, /v1/track, /v1/events).
// Usage: node compare.mjs <edge base url> <server key> <client key> <users.json>  → JSON on stdout.
import { readFileSync } from "node:fs";
import { initializeDevCycle as initializeServer } from "@devcycle/nodejs-server-sdk";
import { initializeDevCycle as initializeClient } from "@devcycle/js-client-sdk";
import { generateBucketedConfig } from "@devcycle/bucketing";

const [, , base, serverKey, clientKey, usersFile] = process.argv;
const users = JSON.parse(readFileSync(usersFile, "utf8"));
const logger = { debug() {}, info() {}, warn() {}, error: (...a) => console.error(...a) };

const values = (variables) => Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, v.value]));
const variations = (features) => Object.fromEntries(Object.entries(features).map(([k, f]) => [k, f.variationKey]));

// Local bucketing: config from the edge's CDN route, events to its events route.
const local = initializeServer(serverKey, {
  configCDNURI: base,
  eventsAPIURI: base,
  eventFlushIntervalMS: 1000,
  logger,
});
await local.onClientInitialized();
const localOut = users.map((u) => ({ variables: values(local.allVariables(u)), features: variations(local.allFeatures(u)) }));
// Evaluating a variable (not allVariables) is what the SDKs report as evaluation events.
const evaluate = (variables, read) => {
  const [key, value] = Object.entries(variables)[0] ?? [];
  if (key !== undefined) read(key, value);
};
evaluate(localOut[0].variables, (key, value) => local.variable(users[0], key, value));
local.track(users[0], { type: "e2e-local", target: "local", value: 1 });
await local.flushEvents();

// Cloud bucketing: the bucketing API.
const cloud = initializeServer(serverKey, { enableCloudBucketing: true, bucketingAPIURI: base, logger });
const cloudOut = [];
for (const u of users) {
  cloudOut.push({ variables: values(await cloud.allVariables(u)), features: variations(await cloud.allFeatures(u)) });
}
await cloud.track(users[0], { type: "e2e-cloud", target: "cloud" });

// The reference bucketing over the very config the SDKs read. @devcycle/bucketing compares
// rollout dates as Date objects (DevCycle's services parse them when they load a config; as
// JSON strings every rollout would count as not started).
const config = await (await fetch(`${base}/config/v2/server/${serverKey}.json`)).json();
for (const feature of config.features) {
  for (const target of feature.configuration.targets) {
    const rollout = target.rollout;
    if (!rollout) continue;
    rollout.startDate = new Date(rollout.startDate);
    for (const stage of rollout.stages ?? []) stage.date = new Date(stage.date);
  }
}
const now = Date.now();
const referenceOut = users.map((u) => {
  const b = generateBucketedConfig({ config, user: { ...u, createdDate: new Date(now), lastSeenDate: new Date(now) } });
  return { variables: values(b.variables), features: variations(b.features) };
});

// The client SDK: one client, each user identified in turn (one /v1/sdkConfig each).
const client = initializeClient(clientKey, users[0], {
  apiProxyURL: base,
  disableConfigCache: true,
  disableRealtimeUpdates: true,
  eventFlushIntervalMS: 60000,
  logger,
});
await client.onClientInitialized();
const clientOut = [];
for (const u of users) {
  await client.identifyUser(u);
  clientOut.push({ variables: values(client.allVariables()), features: variations(client.allFeatures()) });
}
evaluate(clientOut.at(-1).variables, (key, value) => client.variable(key, value));
await client.identifyUser(users[0]);
client.track({ type: "e2e-client", target: "client", value: 2 });
await client.flushEvents();

await local.close();
await client.close();
const out = JSON.stringify({ local: localOut, cloud: cloudOut, client: clientOut, reference: referenceOut });
// Exit only once stdout is flushed: a pipe takes 64 KiB at a time.
process.stdout.write(out, () => process.exit(0));
