// Sign in with a name (or email) and password (POST /users/login), or create the first account
// (POST /users/create). OIDC sign-in appears here once the API offers it (GET /users/oauth/url).
import { useState } from "preact/hooks";
import { post } from "../api.js";
import { html } from "../html.js";
import { session } from "../session.js";
import { ActionState, formData, useAction } from "../ui.js";

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
      <footer>
        <button class="secondary outline" type="button" onClick=${() => setMode(mode === "login" ? "signup" : "login")}>
          ${mode === "login" ? "No account yet? Create one" : "Have an account? Sign in"}
        </button>
      </footer>
    </article>
  </main>`;
}
