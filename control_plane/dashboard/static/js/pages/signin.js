// Sign in with a name and password (POST /users/login), create the first account
// (POST /users/create), or, when the control plane has an OIDC issuer (GET /users/oauth/config),
// with the identity provider: the browser goes to the authorization URL of GET /users/oauth/url
// and comes back to /dashboard/?code=…&state=… (the control plane's --oidc-redirect-url), where
// OidcReturn posts them to /users/oauth/login (or /signup when that was asked for).
import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { html } from "../html.js";
import { session } from "../session.js";
import { ActionState, ErrorBox, formData, useAction } from "../ui.js";

// The login in flight: the state we were given (checked against the one that comes back, so a
// code from a login this tab did not start is refused here) and whether it is a signup.
const PENDING = "flagedge.oidc";

async function startOidc(mode) {
  const { auth_url, state } = await get("/users/oauth/url");
  sessionStorage.setItem(PENDING, JSON.stringify({ state, mode }));
  location.assign(auth_url);
  await new Promise(() => {}); // leaving the page: stay busy until then
}

function OidcButtons() {
  const [config, setConfig] = useState(null);
  const [run, state] = useAction();
  useEffect(() => void get("/users/oauth/config").then(setConfig, () => setConfig({ enabled: false })), []);
  if (!config?.enabled) return null;
  return html`<div>
    <p class="or"><small>or</small></p>
    <button type="button" class="secondary" onClick=${() => run(() => startOidc("login"))} aria-busy=${state.busy}>Sign in with your identity provider (OIDC)</button>
    ${config.signup && html`<button type="button" class="secondary outline" onClick=${() => run(() => startOidc("signup"))}>Create an account with your identity provider</button>`}
    <${ActionState} state=${state} />
  </div>`;
}

export function SignIn() {
  const [mode, setMode] = useState("login");
  const [run, state] = useAction();
  const submit = (e) => {
    const f = formData(e);
    run(async () => {
      const answer = mode === "login" ? await post("/users/login", { name: f.name, password: f.password }) : await post("/users/create", f);
      session.start(answer);
    });
  };
  return html`<main class="container" style="max-width: 28rem; margin-top: 10vh">
    <article>
      <header><h1>flagedge</h1><p>${mode === "login" ? "Sign in to the dashboard" : "Create an account"}</p></header>
      <form onSubmit=${submit} aria-label=${mode === "login" ? "Sign in" : "Create an account"}>
        <label>${mode === "login" ? "Name or email" : "User name"} <input name="name" autocomplete="username" required autofocus /></label>
        ${mode === "signup" &&
        html`<label>Email <input name="email" type="email" autocomplete="email" required /></label>
          <div class="grid">
            <label>First name <input name="first_name" required /></label>
            <label>Last name <input name="last_name" required /></label>
          </div>`}
        <label>Password
          <input name="password" type="password" autocomplete=${mode === "login" ? "current-password" : "new-password"} minlength=${mode === "login" ? 1 : 8} required />
        </label>
        <${ActionState} state=${state} />
        <button type="submit" aria-busy=${state.busy}>${mode === "login" ? "Sign in" : "Create account"}</button>
      </form>
      ${mode === "login" && html`<${OidcButtons} />`}
      <footer>
        <button class="secondary outline" type="button" onClick=${() => setMode(mode === "login" ? "signup" : "login")}>
          ${mode === "login" ? "No account yet? Create one" : "Have an account? Sign in"}
        </button>
      </footer>
    </article>
  </main>`;
}

// The query of a return from the identity provider (?code&state or ?error), else null.
export function oidcReturn() {
  const q = new URLSearchParams(location.search);
  return q.has("state") && (q.has("code") || q.has("error")) ? Object.fromEntries(q) : null;
}

const leave = () => {
  // Drop ?code=…&state=… from the address bar (and from history): they are spent.
  history.replaceState(null, "", location.pathname + "#/");
  dispatchEvent(new HashChangeEvent("hashchange"));
};

export function OidcReturn({ back, onDone }) {
  const [error, setError] = useState(null);
  useEffect(() => {
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    (async () => {
      if (back.error) throw new Error(`The identity provider refused: ${back.error_description || back.error}`);
      if (!pending || pending.state !== back.state) throw new Error("This sign-in was not started from this tab (its state does not match): start again.");
      const answer = await post(pending.mode === "signup" ? "/users/oauth/signup" : "/users/oauth/login", { code: back.code, state: back.state });
      session.start(answer);
      leave();
      onDone();
    })().catch(setError);
  }, []);
  const noAccount = error?.status === 401;
  return html`<main class="container" style="max-width: 32rem; margin-top: 10vh">
    <article>
      <header><h1>Signing in…</h1></header>
      ${!error
        ? html`<p aria-busy="true">Completing the sign-in with your identity provider…</p>`
        : html`<${ErrorBox} error=${error} title="Could not sign you in" />
            ${noAccount && html`<p>No account is linked to this identity, and none has its email. Create one with the identity provider (when this control plane allows it), or ask an admin of your organisation.</p>`}
            <button type="button" onClick=${() => (leave(), onDone())}>Back to sign in</button>`}
    </article>
  </main>`;
}
