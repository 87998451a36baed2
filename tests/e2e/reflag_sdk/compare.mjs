// Evaluate contexts locally with the real @reflag/node-sdk, fed by the edge's GET /features.
// Usage: node compare.mjs <edge base url> <secret key> <contexts.json>  → JSON array on stdout.
import { readFileSync } from "node:fs";
import { ReflagClient } from "@reflag/node-sdk";

const [, , baseUrl, secretKey, contextsFile] = process.argv;
const quiet = { debug() {}, info() {}, warn() {}, error: (...a) => console.error(...a) };
const client = new ReflagClient({
  secretKey,
  apiBaseUrl: baseUrl,
  logger: quiet,
  batchOptions: { flushOnExit: false },
  flagsSyncMode: "polling",
});
await client.initialize();
const contexts = JSON.parse(readFileSync(contextsFile, "utf8"));
const results = contexts.map((context) => {
  const { flags } = client.getFlagsForBootstrap({ ...context, enableTracking: false });
  return Object.fromEntries(
    Object.entries(flags).map(([key, flag]) => [
      key,
      {
        isEnabled: flag.isEnabled,
        config: flag.config && flag.config.key !== undefined ? { key: flag.config.key, payload: flag.config.payload } : null,
      },
    ]),
  );
});
// Exit only once stdout is flushed: a pipe takes 64 KiB at a time.
process.stdout.write(JSON.stringify(results), () => process.exit(0));
