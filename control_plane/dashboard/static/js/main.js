// The dashboard's shell: sign-in gate, top bar (organisation and project pickers), side
// navigation and the page the hash route names (pages/index.js lists them).
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { get, seg } from "./api.js";
import { html } from "./html.js";
import { PAGES } from "./pages/index.js";
import { href, match, navigate, useLocation } from "./router.js";
import { roleIn, session } from "./session.js";
import { OidcReturn, SignIn, oidcReturn } from "./pages/signin.js";
import { Empty } from "./ui.js";

function useSession() {
  const [, setTick] = useState(0);
  useEffect(() => session.subscribe(() => setTick((t) => t + 1)), []);
  return session;
}

function resolve(path) {
  for (const page of PAGES) {
    const params = match(page.path, path);
    if (params) return { page, params };
  }
  return null;
}

function Pickers({ params }) {
  const orgs = session.user?.organisations || [];
  const [projects, setProjects] = useState([]);
  useEffect(() => {
    setProjects([]);
    if (params.org) get("/v1/projects", { org: params.org, query: { perPage: 1000 } }).then(setProjects, () => setProjects([]));
  }, [params.org, params.project]);
  return html`<form aria-label="Where you are" onSubmit=${(e) => e.preventDefault()}>
    <label class="visually-hidden" for="pick-org">Organisation</label>
    <select id="pick-org" value=${params.org || ""} onChange=${(e) => navigate(e.target.value ? href("o", e.target.value, "projects") : "#/")}>
      <option value="">Organisations…</option>
      ${orgs.map((o) => html`<option value=${o.name} selected=${o.name === params.org}>${o.name}</option>`)}
    </select>
    ${params.org &&
    html`<label class="visually-hidden" for="pick-project">Project</label>
      <select
        id="pick-project"
        value=${params.project || ""}
        onChange=${(e) => navigate(e.target.value ? href("o", params.org, "p", e.target.value, "features") : href("o", params.org, "projects"))}
      >
        <option value="">Projects…</option>
        ${projects.map((p) => html`<option value=${p.key} selected=${p.key === params.project}>${p.name} (${p.key})</option>`)}
      </select>`}
  </form>`;
}

function SideNav({ params, path }) {
  const section = (kind, title) => {
    const items = PAGES.filter((p) => p.nav === kind);
    return html`<h2>${title}</h2>
      <ul>
        ${items.map((p) => {
          const to = "#" + p.path.replace(/:(\w+)/g, (_, k) => seg(params[k]));
          return html`<li><a href=${to} aria-current=${to === "#" + path ? "page" : undefined}>${p.title}</a></li>`;
        })}
      </ul>`;
  };
  return html`<nav class="side" aria-label="Sections">
    <ul><li><a href="#/">All organisations</a></li></ul>
    ${params.org && section("org", `Organisation ${params.org}`)}
    ${params.project && section("project", `Project ${params.project}`)}
  </nav>`;
}

function App() {
  useSession();
  const { path, query } = useLocation();
  const [refreshed, setRefreshed] = useState(false);
  // Back from the identity provider (?code=…&state=…): finish that sign-in first.
  const [oidc, setOidc] = useState(oidcReturn);
  // The organisations and roles come from /user on every start: a role changed by an admin
  // shows after a reload, and a stale token signs out.
  useEffect(() => {
    if (session.signedIn && !refreshed) get("/user").then((u) => (session.setUser(u), setRefreshed(true)), () => setRefreshed(true));
  }, [session.signedIn]);
  const found = resolve(path);
  const first = useRef(true);
  useEffect(() => {
    document.title = `${session.signedIn ? found?.page.title || "Not found" : "Sign in"} · flagedge`;
    // After a navigation, keyboard and screen-reader users continue at the new page's content
    // (not at the link they left); the first load keeps the browser's own focus.
    if (!first.current) document.getElementById("main")?.focus();
    first.current = false;
  }, [path, session.signedIn]);
  if (oidc) return html`<${OidcReturn} back=${oidc} onDone=${() => setOidc(null)} />`;
  if (!session.signedIn) return html`<${SignIn} />`;
  const params = found?.params || {};
  const Page = found?.page.component;
  const signOut = async () => {
    try {
      await fetch("/users/logout", { method: "POST", headers: { Authorization: `Bearer ${session.token}` } });
    } finally {
      session.end();
      navigate("#/");
    }
  };
  const role = params.org ? roleIn(params.org) : null;
  return html`<header class="top">
      <a class="brand" href="#/">flagedge</a>
      <${Pickers} params=${params} />
      <div class="who">
        <span>${session.user?.user_id ? "Signed in" : ""}${role ? html` · role <strong data-role=${role}>${role}</strong>` : ""}</span>
        <button class="secondary outline" onClick=${signOut}>Sign out</button>
      </div>
    </header>
    <div class="layout">
      <${SideNav} params=${params} path=${path} />
      <main id="main" tabindex="-1">
        ${Page ? html`<${Page} params=${params} query=${query} key=${path} />` : html`<h1>Not found</h1><${Empty}>No page at ${path}.<//>`}
      </main>
    </div>`;
}

// The placeholder shown until the modules load goes: Preact renders into an empty container.
const root = document.getElementById("app");
root.replaceChildren();
render(html`<${App} />`, root);
