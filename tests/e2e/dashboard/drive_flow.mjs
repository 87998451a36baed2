// The dashboard's approval workflow, audit log, settings and lists in headless Chromium, on a
// real control plane and edge (tests/e2e/test_dashboard_flow.py). Usage:
//   node drive_flow.mjs <control plane url> <edge url> <screenshot dir>
// The organisation, project, production environment and feature are made through the admin API
// (the first driver, drive.mjs, makes them on the pages); everything the test is about happens on
// the pages. Prints one JSON line per step; {"step":"failed",...} says what went wrong.
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const [, , base, edge, shots] = process.argv;
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));
mkdirSync(shots, { recursive: true });

const FEATURE = "one-click";
const problems = [];

async function until(fn, what, timeout = 30000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

// --- the admin API, as a script uses it -------------------------------------------------------
async function call(method, path, body, token, org = "acme") {
  const headers = { "Content-Type": "application/json", "x-organisation": org };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const signUp = async (name) =>
  (await call("POST", "/users/create", { name, password: "correct-horse", first_name: name, last_name: "X", email: `${name}@acme.com` })).user_token.access_token;

// A webhook receiver: answers 200 and remembers what it got.
const received = [];
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    received.push({ event: req.headers["x-flagedge-event"], signature: Boolean(req.headers["x-flagedge-signature"]) });
    res.end("ok");
  });
});
await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });

async function edgeFlag(key, user) {
  const q = new URLSearchParams({ publishableKey: key, "context.user.id": user.id, "context.user.email": user.email });
  const r = await fetch(`${edge}/features/evaluated?${q}`);
  const body = await r.json();
  return body.features?.[FEATURE]?.isEnabled ?? false;
}

try {
  const owner = await signUp("ops");
  const publisher = await signUp("pub");
  await call("POST", "/organisations/create", { name: "acme" }, owner);
  await call("POST", "/organisation/user/create", { user: "pub@acme.com", access: "admin" }, owner);
  await call("POST", "/v1/projects", { name: "Shop", key: "shop" }, owner);
  const prod = await call("POST", "/v1/projects/shop/environments", { name: "Production", key: "prod", type: "production" }, owner);
  const clientKey = prod.sdkKeys.client[0].key;
  await call("POST", "/v1/projects/shop/audiences", {
    name: "Beta testers",
    key: "beta",
    filters: { operator: "and", filters: [{ type: "user", subType: "email", comparator: "endWith", values: ["@beta.example"] }] },
  }, owner);
  await call("POST", "/v1/projects/shop/features", {
    key: FEATURE,
    name: "One-click checkout",
    type: "release",
    variables: [{ key: FEATURE, type: "Boolean" }],
    variations: [
      { key: "on", name: "On", variables: { [FEATURE]: true } },
      { key: "off", name: "Off", variables: { [FEATURE]: false } },
    ],
  }, owner);
  // On in production with no target yet (before the workflow): nobody is served it.
  await call("PATCH", `/v1/projects/shop/features/${FEATURE}/configurations?environment=prod`, { status: "active" }, owner);
  say("setup", { clientKey });

  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    // The refused direct save (412) and nothing else shows as a failed request.
    if (m.type() === "error" && !/status of 412/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const form = (name) => page.getByRole("form", { name });
  const heading = (name) => page.getByRole("heading", { name, level: 1 });
  const go = async (hash, title) => {
    await page.goto(`${base}/dashboard/#${hash}`);
    await heading(title).waitFor();
  };
  const signIn = async (name) => {
    await page.getByLabel("Name or email").fill(name);
    await page.getByLabel("Password").fill("correct-horse");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await heading("Organisations").waitFor();
  };
  const signOut = async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Name or email").waitFor();
  };

  await page.goto(`${base}/dashboard/`);
  // No OIDC issuer on this control plane: no identity-provider button.
  const oidcButtons = await page.getByRole("button", { name: /identity provider/ }).count();
  await signIn("ops");

  // --- the owner turns the approval workflow on (no publisher bypass) and adds a webhook ------
  await go("/o/acme/p/shop/settings", "Settings of Shop");
  const workflow = form("Approval workflow");
  await workflow.getByLabel("Require approval for production changes").check();
  await workflow.getByLabel(/Publishers and owners may write directly/).uncheck();
  await workflow.getByRole("button", { name: "Save workflow" }).click();
  await page.getByText("Approval workflow saved.").waitFor();
  await page.locator("details", { has: page.locator("summary", { hasText: "New webhook" }) }).locator("summary").click();
  const hook = form("New webhook");
  await hook.getByLabel("Name").fill("Targeting to chat");
  await hook.getByLabel("URL").fill(hookUrl);
  await hook.getByRole("button", { name: "Create webhook" }).click();
  const secretShown = (await page.locator(".notice code.secret").innerText()).length > 20;
  await shot("11-settings");
  say("settings", { oidcButtons, secretShown });

  // --- an audience edited in place ---------------------------------------------------------
  await go("/o/acme/p/shop/audiences", "Audiences");
  await page.getByRole("button", { name: "Edit audience beta" }).click();
  const edit = form("Edit audience beta");
  await edit.getByLabel("Values (comma-separated)").fill("@beta.example, @acme.com");
  await edit.getByRole("button", { name: "Save audience" }).click();
  await page.getByRole("form", { name: "Edit audience beta" }).waitFor({ state: "detached" });
  const audience = await call("GET", "/v1/projects/shop/audiences/beta", undefined, owner);

  // --- features list: staleness column and filter --------------------------------------------
  await go("/o/acme/p/shop/features", "Features");
  const filtered = page.waitForResponse((r) => r.url().includes("staleness=notStale"));
  await page.getByLabel("Staleness").selectOption("notStale");
  const notStale = (await (await filtered).json()).map((f) => f.key);
  await page.getByRole("link", { name: "One-click checkout" }).waitFor();
  const stalenessCell = await page.locator("td[data-staleness]").first().getAttribute("data-staleness");
  say("lists", { audienceValues: audience.filters.filters[0].values, notStale, stalenessCell });

  // --- a direct production change is refused and proposed as a change request ---------------
  await go(`/o/acme/p/shop/features/${FEATURE}`, /One-click checkout/);
  await page.getByRole("button", { name: "Add target" }).click();
  await page.getByLabel("Target name").fill("Beta first");
  await page.getByLabel("Audience of target 1").selectOption("audience");
  await page.getByLabel("Saved audience of target 1").selectOption({ label: "Beta testers (beta)" });
  await page.getByLabel("Change reason (optional, goes to the audit log)").fill("beta testers get it first");
  const refusedAnswer = page.waitForResponse((r) => r.url().includes("/configurations") && r.request().method() === "PATCH");
  await page.getByRole("button", { name: "Save targeting" }).click();
  const refusedStatus = (await refusedAnswer).status();
  const propose = form("Propose a change request");
  await propose.waitFor();
  const refusal = await page.getByRole("alert").first().innerText();
  await propose.getByLabel("What and why").fill("Beta testers first");
  await propose.getByRole("checkbox", { name: /pub@acme\.com/ }).check();
  await propose.getByRole("button", { name: "Create change request" }).click();
  await page.getByText("Change request submitted for review.").waitFor();
  const request = page.locator("article[data-change-request]");
  await request.first().waitFor();
  const proposed = {
    status: await request.getAttribute("data-status"),
    diffPaths: await request.locator("[data-diff-path]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-diff-path"))),
    ownerSeesApprove: await request.getByRole("button", { name: "Approve" }).count(),
  };
  const beta = { id: "b-1", email: "ann@beta.example" };
  const servedBefore = await edgeFlag(clientKey, beta);
  await shot("12-change-request");
  say("proposed", { refusedStatus, refusal, proposed, servedBefore });

  // --- the publisher approves and applies it; the edge serves it -----------------------------
  await signOut();
  await signIn("pub");
  await go(`/o/acme/p/shop/features/${FEATURE}`, /One-click checkout/);
  const review = form(/^Review change request/);
  await review.getByLabel("Comment").fill("looks right");
  await review.getByRole("button", { name: "Approve" }).click();
  await page.getByText("Change request approved.").waitFor();
  await page.getByRole("button", { name: "Apply change" }).click();
  await page.getByText("Change request applied").waitFor();
  const served = await until(() => edgeFlag(clientKey, beta), "the edge to serve the approved change");
  const stranger = await edgeFlag(clientKey, { id: "s-1", email: "someone@example.com" });
  const publisherWorkflowForm = await (async () => {
    await go("/o/acme/p/shop/settings", "Settings of Shop");
    return page.getByRole("form", { name: "Approval workflow" }).count();
  })();
  say("applied", { served, stranger, publisherWorkflowForm });

  // --- the audit page shows the change with its diff -----------------------------------------
  await go(`/o/acme/p/shop/audit?feature=${FEATURE}`, /Audit log of/);
  const entry = page.locator('li[data-action="configuration.update"][data-target="feature:one-click/environment:prod"]').first();
  await entry.waitFor();
  const audit = {
    actions: await page.locator("li[data-action]").evaluateAll((items) => items.map((i) => i.getAttribute("data-action"))),
    text: await entry.innerText(),
    diff: await entry.locator("[data-diff-path]").evaluateAll((rows) =>
      rows.map((r) => [r.getAttribute("data-diff-path"), ...[...r.querySelectorAll("td")].slice(1).map((td) => td.innerText.trim())]),
    ),
  };
  await shot("13-audit");
  await go("/o/acme/p/shop/audit", /^Audit log$/);
  await page.waitForLoadState("networkidle");
  const projectActions = await page.locator("li[data-action]").evaluateAll((items) => items.map((i) => i.getAttribute("data-action")));
  say("audit", { ...audit, projectActions });

  // --- the webhook's deliveries, and the feature's evaluation counts ------------------------
  await until(() => received.length > 0, "the webhook delivery");
  await go("/o/acme/p/shop/settings", "Settings of Shop");
  await page.getByRole("button", { name: "Deliveries" }).click();
  const delivered = await page.locator('table[aria-label="Deliveries"]').innerText();
  await go(`/o/acme/p/shop/features/${FEATURE}`, /One-click checkout/);
  const evaluations = await until(async () => {
    await page.reload(); // the same hash again would not load the page anew
    await heading(/One-click checkout/).waitFor();
    await page.locator("#evaluations-title").waitFor();
    await page.waitForLoadState("networkidle");
    const total = page.locator("[data-evaluations-total]");
    return (await total.count()) > 0 && Number(await total.innerText());
  }, "the edge's evaluation counts", 60000);
  await page.locator("#evaluations-title").scrollIntoViewIfNeeded();
  await shot("14-feature-evaluations");
  say("delivered", { received, delivered, evaluations });

  // --- self-targeting: the publisher tests the feature as their SDK user id ------------------
  await go("/o/acme/p/shop/settings", "Settings of Shop");
  await form("Your SDK user id").getByLabel(/Your SDK user id/).fill("pub-device");
  await form("Your SDK user id").getByRole("button", { name: "Save user id" }).click();
  await page.getByText("Your SDK user id is saved.").waitFor();
  const override = form("New override");
  await override.getByLabel("Feature").selectOption(FEATURE);
  await override.getByLabel("Environment").selectOption("prod");
  await override.getByLabel("Variation").selectOption("on");
  await override.getByRole("button", { name: "Override" }).click();
  await page.getByText(`You are served on of ${FEATURE}.`).waitFor();
  await page.getByRole("button", { name: "Remove override" }).waitFor();
  // Not a beta tester, yet served: the override, at the edge.
  const overridden = await until(() => edgeFlag(clientKey, { id: "pub-device", email: "pub@example.com" }), "the edge to serve the override");
  say("self-targeting", { overridden });

  // --- a read-only member: the workflow's and settings' write controls are not shown ---------
  await call("POST", "/users/create", { name: "rita", password: "correct-horse", first_name: "R", last_name: "O", email: "rita@acme.com" });
  await call("POST", "/organisation/user/create", { user: "rita@acme.com", access: "read" }, owner);
  // An open request for the reader to look at (made by the owner through the API).
  const crs = `/v2/projects/shop/features/${FEATURE}/change-requests`;
  const open = await call("POST", crs, { path: `/v1/projects/shop/features/${FEATURE}/configurations?environment=prod`, method: "PATCH", body: { status: "inactive" } }, owner);
  const pubId = (await call("GET", "/organisation/user/list", undefined, owner)).users.find((u) => u.email === "pub@acme.com").user_id;
  await call("PATCH", `${crs}/${open._id}/submit`, { description: "turn it off", reviewers: [pubId] }, owner);
  await signOut();
  await signIn("rita");
  const WRITES = /^(Approve|Reject|Apply change|Cancel request|Submit for review|Save workflow|Create webhook|Delete|Deliveries|Save targeting|Add target|Create change request|Edit|Save audience)/;
  const readerControls = {};
  for (const [hash, title] of [
    [`/o/acme/p/shop/features/${FEATURE}`, /One-click checkout/],
    ["/o/acme/p/shop/settings", "Settings of Shop"],
    ["/o/acme/p/shop/change-requests", "Change requests"],
    ["/o/acme/p/shop/audit", /^Audit log$/],
    ["/o/acme/p/shop/audiences", "Audiences"],
  ]) {
    await go(hash, title);
    await page.waitForLoadState("networkidle");
    const buttons = await page.getByRole("button").allInnerTexts();
    readerControls[hash] = buttons.map((b) => b.trim()).filter((b) => WRITES.test(b));
  }
  await go(`/o/acme/p/shop/features/${FEATURE}`, /One-click checkout/);
  const readerSeesRequest = await page.locator(`article[data-change-request="${open._id}"]`).getAttribute("data-status");
  say("reader", { readerControls, readerSeesRequest });
  say("done", { problems });
} catch (error) {
  const pages = browser.contexts().flatMap((c) => c.pages());
  if (pages.length) await pages[0].screenshot({ path: `${shots}/failed-flow.png`, fullPage: true }).catch(() => {});
  say("failed", { error: String(error.stack || error), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
  receiver.close();
}
