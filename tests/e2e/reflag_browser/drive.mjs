// The real @reflag/browser-sdk in headless Chromium, in a page served from another origin than
// the edge. Usage: node drive.mjs <page url> <edge base url> <publishable key> <flag key>
// Prints JSON lines: {"step":"ready",...} once the SDK has read its flags and sent a track, a
// feedback and (through its bulk queue) user, company and check events; then
// {"step":"live",...} when the flag's value changes by itself (live updates over /sse/client,
// after the test changes the flag through the admin API); then {"step":"done",...}, or
// {"step":"failed",...} with what went wrong.
import { chromium } from "playwright-core";

const [, , pageUrl, edge, publishableKey, flagKey] = process.argv;
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
// Everything the browser refused or the SDK complained about: a CORS refusal shows as a failed
// request and a console error, an SDK request the edge refused as an SDK error or warning.
const problems = [];
const edgeAnswers = [];
try {
  const page = await browser.newPage();
  page.on("requestfailed", (r) => problems.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => {
    if (r.url().startsWith(edge)) edgeAnswers.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`);
  });

  await page.goto(pageUrl);
  const bulkSent = page.waitForResponse((r) => r.url().startsWith(`${edge}/bulk`), { timeout: 15000 });
  const ready = await page.evaluate(
    async ({ edge, publishableKey, flagKey }) => {
      const client = new window.ReflagBrowserSDK.ReflagClient({
        publishableKey,
        apiBaseUrl: edge,
        user: { id: "u-browser", name: "Ada", plan: "pro" },
        company: { id: "c-browser", seats: 12 },
        enableLiveFlagUpdates: true,
        trackingQueue: { flushDelayMs: 100 },
      });
      window.reflag = client;
      await client.initialize();
      const flags = Object.fromEntries(Object.entries(client.getFlags()).map(([k, f]) => [k, f.isEnabled]));
      const enabled = client.getFlag(flagKey).isEnabled; // sends a check event (bulk queue)
      const track = await client.track("clicked-buy", { amount: 3 });
      const feedback = await client.feedback({ flagKey, score: 4.5, comment: "almost perfect" });
      return { origin: location.origin, flags, enabled, track: track?.status, feedback: feedback?.status };
    },
    { edge, publishableKey, flagKey },
  );
  ready.bulk = (await bulkSent).status();
  say("ready", ready);

  // Live updates: the SDK hears of the new version on /sse/client and refetches.
  await page.waitForFunction(
    ({ flagKey, before }) => window.reflag.getFlags()[flagKey]?.isEnabled !== before,
    { flagKey, before: ready.enabled },
    { timeout: 15000, polling: 5 },
  );
  say("live", { enabled: await page.evaluate((k) => window.reflag.getFlags()[k]?.isEnabled ?? null, flagKey) });

  await page.evaluate(() => window.reflag.stop()); // flushes the bulk queue
  say("done", { problems, edgeAnswers });
} catch (error) {
  say("failed", { error: String(error), problems, edgeAnswers });
  process.exitCode = 1;
} finally {
  await browser.close();
}
