// Signing in to the dashboard with an OpenID provider (tests/e2e/test_dashboard_flow.py), in
// headless Chromium: the page's button, the provider's own login and consent pages, the return to
// /dashboard/?code=…&state=… and the session it starts; and a forged return refused on the page.
// Usage: node drive_oidc.mjs <control plane url> <screenshot dir>
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const [, , base, shots] = process.argv;
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));
mkdirSync(shots, { recursive: true });
const problems = [];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    // The dashboard's refused login (401) is expected; the provider's own pages are not ours.
    if (m.type() === "error" && page.url().startsWith(base) && !/status of 40[01]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const heading = (name) => page.getByRole("heading", { name, level: 1 });
  // The provider's development pages: a login form (any password), then a consent form.
  const atProvider = async (login) => {
    // A provider that remembers the browser's login and consent redirects straight back: the
    // page may be home again before we look.
    const left = await page.waitForURL((u) => !u.href.startsWith(base), { waitUntil: "commit", timeout: 5000 }).then(() => true, () => false);
    if (!left) return null;
    const providerUrl = page.url();
    for (let i = 0; i < 6 && !page.url().startsWith(base); i++) {
      await page.waitForLoadState("domcontentloaded");
      if (page.url().startsWith(base)) break;
      const before = page.url();
      if (await page.locator('input[name="login"]').count()) {
        await page.locator('input[name="login"]').fill(login);
        await page.locator('input[name="password"]').fill("any");
      }
      await page.locator('button[type="submit"]').first().click();
      await page.waitForURL((u) => u.href !== before, { waitUntil: "commit" });
    }
    await page.waitForURL((u) => u.href.startsWith(base), { waitUntil: "commit" });
    return providerUrl;
  };

  await page.goto(`${base}/dashboard/`);
  // An identity with no account: login says so honestly.
  await page.getByRole("button", { name: "Sign in with your identity provider (OIDC)" }).click();
  const providerUrl = await atProvider("dana");
  await heading("Signing in…").waitFor();
  const noAccount = await page.getByRole("alert").innerText();
  await page.screenshot({ path: `${shots}/15-oidc-no-account.png` });
  await page.getByRole("button", { name: "Back to sign in" }).click();

  // Signup through the provider creates the account and signs in.
  await page.getByRole("button", { name: "Create an account with your identity provider" }).click();
  await atProvider("dana");
  await heading("Organisations").waitFor();
  const afterSignup = { url: page.url(), session: await page.evaluate(() => Boolean(JSON.parse(sessionStorage.getItem("flagedge.session"))?.access_token)) };
  await page.getByRole("button", { name: "Sign out" }).click();

  // Login again (the provider remembers the browser: maybe no login form this time).
  await page.getByRole("button", { name: "Sign in with your identity provider (OIDC)" }).click();
  await atProvider("dana");
  await heading("Organisations").waitFor();
  const me = await page.evaluate(async () => {
    const { access_token } = JSON.parse(sessionStorage.getItem("flagedge.session"));
    const r = await fetch("/user", { headers: { Authorization: `Bearer ${access_token}` } });
    return r.status;
  });
  await page.getByRole("button", { name: "Sign out" }).click();

  // A return this tab did not start (a forged or replayed link) is refused before any request.
  await page.goto(`${base}/dashboard/?code=stolen&state=forged`);
  await heading("Signing in…").waitFor();
  const forged = await page.getByRole("alert").innerText();
  say("oidc", { providerUrl, noAccount, afterSignup, me, forged });
  say("done", { problems });
} catch (error) {
  say("failed", { error: String(error.stack || error), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
