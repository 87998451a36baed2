// The admin dashboard in headless Chromium (Debian's chromium, driven by playwright-core), on a
// real control plane and edge. Usage: node drive.mjs <control plane url> <edge url> <screenshot dir>
// Prints one JSON line per step ({"step": name, ...what the step saw}); the test asserts on them
// and checks the edge itself. {"step":"failed",...} says what went wrong.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const [, , base, edge, shots] = process.argv;
const say = (step, data = {}) => console.log(JSON.stringify({ step, ...data }));
mkdirSync(shots, { recursive: true });

const FEATURE = "new-checkout";
const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"], // root in a container has no user namespaces for Chromium's sandbox
});

async function until(fn, what, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// What the edge answers a Reflag client for one context (the SDK's own route).
async function edgeFlag(key, user) {
  const q = new URLSearchParams({ publishableKey: key, "context.user.id": user.id, "context.user.email": user.email });
  const r = await fetch(`${edge}/features/evaluated?${q}`);
  const body = await r.json();
  return body.features?.[FEATURE]?.isEnabled ?? false;
}

try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  // Answers the API refused (the wrong password, the forged writes, a widget not configured yet)
  // show as console errors too; they are expected and shown on the page, anything else is not.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[134]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const form = (name) => page.getByRole("form", { name });
  const heading = (name) => page.getByRole("heading", { name, level: 1 });
  // Opens the <details> whose summary says `summary` (clicking an open one would close it).
  const reveal = async (summary) => {
    const details = page.locator("details", { has: page.locator("summary", { hasText: summary }) }).first();
    if (!(await details.evaluate((e) => e.open))) await details.locator("summary").click();
  };
  const go = async (hash, title) => {
    await page.goto(`${base}/dashboard/#${hash}`);
    await heading(title).waitFor();
  };

  // --- sign up, sign out, sign in with the password -------------------------------------
  const response = await page.goto(`${base}/`);
  const headers = response.headers();
  say("served", { url: page.url(), csp: headers["content-security-policy"], cache: headers["cache-control"] });
  await page.getByRole("button", { name: "No account yet? Create one" }).click();
  await page.getByLabel("User name").fill("ops");
  await page.getByLabel("Email", { exact: true }).fill("ops@acme.com");
  await page.getByLabel("First name").fill("Ops");
  await page.getByLabel("Last name").fill("Person");
  await page.getByLabel("Password").fill("correct-horse");
  await page.getByRole("button", { name: "Create account" }).click();
  await heading("Organisations").waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByLabel("Name or email").fill("ops");
  await page.getByRole("button", { name: "Sign in" }).click();
  const refused = await page.getByRole("alert").innerText();
  await shot("01-sign-in");
  // From the keyboard: Enter in the password field submits the form.
  await page.getByLabel("Password").fill("correct-horse");
  await page.getByLabel("Password").press("Enter");
  await heading("Organisations").waitFor();
  const stored = await page.evaluate(() => Object.keys(sessionStorage));
  say("signed-in", { refused, sessionStorage: stored, cookies: (await context.cookies()).length });

  // --- organisation, project, environment and its SDK keys -------------------------------
  await form("New organisation").getByLabel("Name").fill("acme");
  await form("New organisation").getByRole("button", { name: "Create organisation" }).click();
  await page.getByRole("link", { name: "acme", exact: true }).click();
  await heading("Projects in acme").waitFor();
  await form("New project").getByLabel("Name").fill("Shop");
  await form("New project").getByLabel("Key").fill("shop");
  await form("New project").getByRole("button", { name: "Create project" }).click();
  await page.getByRole("link", { name: "Shop" }).waitFor();
  await go("/o/acme/p/shop/environments", "Environments and SDK keys");
  await form("New environment").getByLabel("Name").fill("Production");
  await form("New environment").getByLabel("Key").fill("prod");
  await form("New environment").getByLabel("Type").selectOption("production");
  await form("New environment").getByRole("button", { name: "Create environment" }).click();
  const clientKey = await page.locator("[data-sdk-key=client]").innerText();
  await reveal("SDK snippets for prod");
  const snippet = await page.locator("pre.snippet").first().innerText();
  await shot("02-environments");
  say("project", { clientKey, snippetHasKey: snippet.includes(clientKey), snippetHasEdge: snippet.includes(edge) });

  // --- an audience, a feature targeted at it with a 50% rollout --------------------------
  await go("/o/acme/p/shop/audiences", "Audiences");
  const audience = form("New audience");
  await audience.getByLabel("Name").fill("Acme staff");
  await audience.getByLabel("Key").fill("acme-staff");
  await audience.getByLabel("Property").selectOption("email");
  await audience.getByLabel("Comparator").selectOption("endWith");
  await audience.getByLabel("Values (comma-separated)").fill("@acme.com");
  await audience.getByRole("button", { name: "Create audience" }).click();
  await page.getByRole("cell", { name: "acme-staff", exact: true }).waitFor();
  await shot("03-audiences");

  await go("/o/acme/p/shop/features", "Features");
  const feature = form("New feature");
  await feature.getByLabel("Key").fill(FEATURE);
  await feature.getByLabel("Name").fill("New checkout");
  await feature.getByRole("button", { name: "Create feature" }).click();
  await page.getByRole("heading", { name: /New checkout/, level: 1 }).waitFor();
  await reveal("Edit the feature and its status");
  await form("Edit feature").getByLabel("Tags (comma-separated)").fill("checkout, q4");
  await form("Edit feature").getByRole("button", { name: "Save feature" }).click();
  await page.getByText("Feature saved.").waitFor();
  await page.locator("h1 + p .badge", { hasText: "q4" }).waitFor(); // the page reloads the feature
  const tags = await page.locator("h1 + p .badge").allInnerTexts();
  const staff = { id: "u-0", email: "ada@acme.com" };
  const before = await edgeFlag(clientKey, staff);

  await page.getByRole("button", { name: "Add target" }).click();
  await page.getByLabel("Target name").fill("Staff first");
  await page.getByLabel("Audience of target 1").selectOption("audience");
  await page.getByLabel("Saved audience of target 1").selectOption({ label: "Acme staff (acme-staff)" });
  await page.getByLabel("Rollout of target 1").selectOption("gradual");
  await page.getByLabel("Start percentage of target 1").fill("50");
  const anHourAgo = await page.evaluate(() => {
    const d = new Date(Date.now() - 3600e3);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await page.getByLabel("Starts").fill(anHourAgo);
  // Before saving: the panel evaluates the draft (POST .../evaluate with the unsaved targets).
  await page.getByLabel(/^Context \(JSON/).fill(JSON.stringify({ user: { id: "u-1", email: "draft@example.com" } }));
  const draftAnswer = page.waitForResponse((r) => r.url().includes("/evaluate") && r.request().method() === "POST");
  await page.getByRole("button", { name: "Evaluate" }).click();
  const draft = await (await draftAnswer).json();
  await page.getByLabel("Change reason (optional, goes to the audit log)").fill("staff first, half of them");
  await page.getByRole("button", { name: "Save targeting" }).click();
  await page.getByText("Targeting saved in Production").waitFor();
  await page.getByRole("switch", { name: /Serve new-checkout in Production/ }).check();
  await page.getByText("new-checkout turned on in Production").waitFor();
  const current = await page.locator("[data-current-percentage]").innerText();

  // --- try contexts through the evaluator: find one inside the rollout and one outside ----
  const tryContext = async (user) => {
    await page.getByLabel(/^Context \(JSON/).fill(JSON.stringify({ user }));
    // The page also evaluates by itself after a saved change: wait for this context's answer.
    const answered = page.waitForResponse((r) => r.url().includes("/evaluate") && r.url().includes(encodeURIComponent(user.email)));
    await page.getByRole("button", { name: "Evaluate" }).click();
    return (await answered).json();
  };
  let inside = null;
  let outside = null;
  for (let i = 0; i < 40 && !(inside && outside); i++) {
    const user = { id: `u-${i}`, email: `person${i}@acme.com` };
    const r = await tryContext(user);
    if (r.enabled && !inside) inside = { user, explanation: r.explanation, target: r.target };
    if (!r.enabled && !outside) outside = { user, explanation: r.explanation };
  }
  const stranger = { id: inside.user.id, email: "someone@example.com" };
  const strangerTry = await tryContext(stranger);
  await tryContext(inside.user);
  await page.locator("[data-try-result]").waitFor();
  await shot("04-feature");
  // The edge follows the control plane's writes within its poll interval.
  const after = await until(async () => (await edgeFlag(clientKey, inside.user)) && true, "the edge to enable the flag");
  say("targeting", {
    draft: { draft: draft.draft, status: draft.status, explanation: draft.explanation },
    tags,
    before,
    after,
    current,
    inside,
    outside,
    outsideAtEdge: await edgeFlag(clientKey, outside.user),
    stranger: { explanation: strangerTry.explanation, enabled: strangerTry.enabled, atEdge: await edgeFlag(clientKey, stranger) },
  });

  // --- Airborne: a verified file and package, a live release, an experiment ramped up and down
  await go("/o/acme/p/shop/airborne", "Airborne releases of shop");
  const sha = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // sha256("foo")
  for (const path of ["index.jsa", "main.js"]) {
    await reveal("Record a file");
    const f = form("New file");
    await f.getByLabel("Path").fill(path);
    await f.getByLabel("URL").fill(`https://cdn.example.com/${path}`);
    await f.getByLabel("Tag", { exact: true }).fill("v1");
    await f.getByLabel("Size in bytes (with checksum)").fill("3");
    await f.getByLabel("SHA-256").fill(sha);
    await f.getByRole("button", { name: "Record file" }).click();
    await page.getByText(`File ${path} recorded.`).waitFor();
  }
  await reveal("New package");
  await form("New package").getByLabel("Index file (path@tag:T)").fill("index.jsa@tag:v1");
  await form("New package").getByLabel("Tag", { exact: true }).fill("v1");
  await form("New package").getByLabel("Files (comma-separated keys)").fill("main.js@tag:v1");
  await form("New package").getByRole("button", { name: "Create package" }).click();
  await page.getByText("Package created.").waitFor();
  await reveal("New dimension");
  await form("New dimension").getByLabel("Name").fill("os");
  await form("New dimension").getByRole("button", { name: "Create dimension" }).click();
  await page.getByText("Dimension os created.").waitFor();
  const release = async (dimensions, which) => {
    await reveal("New release");
    const f = form("New release");
    await f.getByLabel("Dimensions (k=v;k2=v2, empty: everyone)").fill(dimensions);
    await f.getByLabel("Config properties (JSON)").fill(JSON.stringify({ which }));
    await f.getByRole("button", { name: "Create release" }).click();
    await page.getByText("Release created.").waitFor();
    await page.getByText("Release created.").waitFor({ state: "detached" }).catch(() => {});
  };
  await release("", "stable");
  await release("os=android", "android-beta");
  const open = page.locator("article[data-status=CREATED]");
  const releaseId = await open.getAttribute("data-release");
  const ramp = async (pct) => {
    await page.getByLabel(`Traffic percentage of release ${releaseId}`).fill(String(pct));
    await page.getByRole("button", { name: "Apply ramp" }).click();
    await page.getByText(`Release ${releaseId} ramped to ${pct}%.`).waitFor();
  };
  await ramp(50);
  await ramp(100);
  const ask = async (dims) => {
    await form("Which release").getByLabel(/^x-dimensions/).fill(dims);
    const answered = page.waitForResponse((r) => r.url().includes("/live/release?"));
    await form("Which release").getByRole("button", { name: "Ask the edge" }).click();
    return (await answered).json();
  };
  const android = await until(async () => {
    const a = await ask("os=android;toss=device-1");
    return a.answer?.config?.properties?.which === "android-beta" && a;
  }, "the edge to serve the android experiment at 100%");
  const ios = await ask("os=ios;toss=device-1");
  await ramp(20);
  await shot("05-airborne");
  const traffic = await page.locator(`article[data-release="${releaseId}"] [data-traffic]`).innerText();
  say("airborne", { releaseId, android: android.answer.config.properties, ios: ios.answer?.config?.properties, traffic });

  // --- Releaseo: widget settings, a public submission approved onto the public board -------
  await go("/o/acme/p/shop/releaseo", "Releaseo for shop");
  await page.getByRole("button", { name: "Save widget settings" }).click();
  const projectKey = await page.locator("[data-project-key]").innerText();
  const submitted = await until(async () => {
    const r = await fetch(`${edge}/sdk/feature-requests?key=${encodeURIComponent(projectKey)}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": "dark-mode-1" },
      body: JSON.stringify({ userId: "visitor-1", title: "Dark mode", description: "for late nights" }),
    });
    return r.status === 202 && r.json();
  }, "the edge to take a submission");
  const board = async () => {
    const r = await fetch(`${edge}/sdk/feature-requests?key=${encodeURIComponent(projectKey)}`);
    return r.status === 200 ? (await r.json()).items.map((i) => i.id) : [];
  };
  const hiddenBefore = !(await board()).includes(submitted.id);
  await until(async () => {
    await page.reload();
    await heading("Releaseo for shop").waitFor();
    return (await page.locator(`tr[data-request="${submitted.id}"]`).count()) > 0;
  }, "the submission to reach moderation");
  await shot("06-releaseo");
  await page.locator(`tr[data-request="${submitted.id}"]`).getByRole("button", { name: "Approve" }).click();
  await page.getByText("“Dark mode” approved").waitFor();
  const onBoard = await until(async () => (await board()).includes(submitted.id), "the approved request on the public board");
  say("releaseo", { requestId: submitted.id, hiddenBefore, onBoard });

  // --- live state, posts and feedback ------------------------------------------------------
  await go("/o/acme/p/shop/live", "Live state");
  await page.locator(`tr[data-edge="${edge}"]`).getByText("ready", { exact: true }).waitFor();
  const published = await page.locator("[data-published-version]").innerText();
  await shot("07-live");
  await go("/o/acme/sytwm", "Posts and feedback");
  await shot("08-sytwm");
  say("live", { published });

  // --- a read-only member: no write controls, and a forged write is refused -----------------
  const created = await fetch(`${base}/users/create`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: "reader", password: "correct-horse", first_name: "R", last_name: "O", email: "reader@acme.com" }),
  });
  await go("/o/acme/members", "Members of acme");
  await form("Add a member").getByLabel("Email of an existing user").fill("reader@acme.com");
  await form("Add a member").getByLabel("Role").selectOption("read");
  await form("Add a member").getByRole("button", { name: "Add member" }).click();
  await page.getByText("reader@acme.com added.").waitFor();
  await shot("09-members");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Name or email").fill("reader@acme.com");
  await page.getByLabel("Password").fill("correct-horse");
  await page.getByRole("button", { name: "Sign in" }).click();
  await heading("Organisations").waitFor();

  // Every control that writes, by its accessible name, on the pages that have them.
  const WRITES = /^(Save|Add target|Create|Apply ramp|Conclude|Discard|Approve|Reject|Rotate|Invalidate|Add member|Remove|Publish|Add variation|Add variable|Set status|Record file|Add |Unpublish|Hide|Show$)/;
  const writeControls = {};
  for (const [hash, title] of [
    [`/o/acme/p/shop/features/${FEATURE}`, /New checkout/],
    ["/o/acme/p/shop/features", "Features"],
    ["/o/acme/p/shop/environments", "Environments and SDK keys"],
    ["/o/acme/p/shop/audiences", "Audiences"],
    ["/o/acme/p/shop/airborne", "Airborne releases of shop"],
    ["/o/acme/p/shop/releaseo", "Releaseo for shop"],
    ["/o/acme/members", "Members of acme"],
    ["/o/acme/projects", "Projects in acme"],
  ]) {
    await page.goto(`${base}/dashboard/#${hash}`);
    await heading(title).waitFor();
    await page.waitForLoadState("networkidle");
    const buttons = await page.getByRole("button").allInnerTexts();
    const switches = await page.getByRole("switch").count();
    writeControls[hash] = { buttons: buttons.filter((b) => WRITES.test(b.trim())), switches };
    if (hash.endsWith(FEATURE)) await shot("10-read-only-feature");
  }
  const role = await page.locator("[data-role]").innerText();
  // A forged write from the page: the read-only token, straight to the admin API.
  const forged = await page.evaluate(async (feature) => {
    const { access_token } = JSON.parse(sessionStorage.getItem("flagedge.session"));
    const h = { Authorization: `Bearer ${access_token}`, "Content-Type": "application/json", "x-organisation": "acme" };
    const toggle = await fetch(`/v1/projects/shop/features/${feature}/configurations?environment=prod`, {
      method: "PATCH",
      headers: h,
      body: JSON.stringify({ status: "inactive" }),
    });
    const approve = await fetch("/v1/projects/shop/features", { method: "POST", headers: h, body: JSON.stringify({ key: "forged", name: "forged" }) });
    return { toggle: toggle.status, create: approve.status, body: await toggle.json() };
  }, FEATURE);
  say("read-only", { created: created.status, role, writeControls, forged, stillOn: await edgeFlag(clientKey, inside.user) });
  say("done", { problems });
} catch (error) {
  say("failed", { error: String(error.stack || error), problems });
  process.exitCode = 1;
} finally {
  await browser.close();
}
