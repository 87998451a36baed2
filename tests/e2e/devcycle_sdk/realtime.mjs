// The server SDK follows the edge's realtime stream: with polling every 10 minutes, it prints
// {value, sse} once its stream is open, then (after a line on stdin: "the config changed") the
// new value of the variable as soon as it serves it.
// Usage: node realtime.mjs <edge base url> <server key> <variable key>
import { createInterface } from "node:readline";
import { initializeDevCycle } from "@devcycle/nodejs-server-sdk";

const [, , base, serverKey, variable] = process.argv;
const logger = { debug() {}, info() {}, warn() {}, error: (...a) => console.error(...a) };
const client = initializeDevCycle(serverKey, {
  configCDNURI: base,
  eventsAPIURI: base,
  configPollingIntervalMS: 600000,
  disableAutomaticEventLogging: true,
  logger,
});
await client.onClientInitialized();
const user = { user_id: "realtime-user" };
const connected = () => Boolean(client.configHelper?.sseConnection?.isConnected());
for (let i = 0; i < 100 && !connected(); i++) await new Promise((r) => setTimeout(r, 100));
// allVariables: the served value whatever its type (null when the user is not served it).
const valueOf = () => client.allVariables(user)[variable]?.value ?? null;
const first = valueOf();
console.log(JSON.stringify({ value: first, sse: connected() }));
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
for (;;) {
  const value = valueOf();
  if (JSON.stringify(value) !== JSON.stringify(first)) {
    console.log(JSON.stringify({ value }));
    break;
  }
  await new Promise((r) => setTimeout(r, 50));
}
await client.close();
process.exit(0);
