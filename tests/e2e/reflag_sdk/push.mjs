// The real @reflag/node-sdk in push mode, its default sync mode (flagsSyncMode is not set).
// Usage: node push.mjs <edge base url> <secret key> <flag key>
// Prints "ready <isEnabled>" once initialized, then "changed <isEnabled>" each time the flag's
// value for a user changes; the test reads these lines.
import { ReflagClient } from "@reflag/node-sdk";

const [, , baseUrl, secretKey, flagKey] = process.argv;
const logger = { debug() {}, info() {}, warn: (...a) => console.error(...a), error: (...a) => console.error(...a) };
const client = new ReflagClient({
  secretKey,
  apiBaseUrl: baseUrl,
  // 1.7.1 does not derive the push URL from apiBaseUrl: it defaults to
  // https://front.reflag.com/sse/server whatever apiBaseUrl says.
  flagsPushUrl: `${baseUrl}/sse/server`,
  logger,
  batchOptions: { flushOnExit: false },
});
await client.initialize();
const enabled = () =>
  client.getFlagsForBootstrap({ user: { id: "u1" }, enableTracking: false }).flags[flagKey]?.isEnabled ?? null;
let last = enabled();
console.log(`ready ${last}`);
// The SDK refreshes its definitions in the background when told of a new version; look often.
setInterval(() => {
  const now = enabled();
  if (now !== last) {
    last = now;
    console.log(`changed ${now}`);
  }
}, 5);
