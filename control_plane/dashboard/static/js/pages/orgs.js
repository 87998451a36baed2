// Organisations (GET /user, POST /organisations/create) and an organisation's members and roles
// (/organisation/user/*), plus its admin API keys (/organisations/{org}/api-keys).
import { del, get, post, seg } from "../api.js";
import { html } from "../html.js";
import { href } from "../router.js";
import { ROLES, can, session } from "../session.js";
import { ActionState, CopyButton, Empty, Pending, formData, useAction, useLoad, when } from "../ui.js";

export function Organisations() {
  const load = useLoad(() => get("/user"), []);
  const [run, state] = useAction();
  const create = (e) => {
    const f = formData(e);
    run(async () => {
      await post("/organisations/create", { name: f.name });
      session.setUser(await get("/user"));
      load.reload();
    }, `Organisation ${f.name} created.`);
  };
  if (!load.data) return html`<${Pending} load=${load} what="your organisations" />`;
  const orgs = load.data.organisations;
  return html`<h1>Organisations</h1>
    ${orgs.length === 0
      ? html`<${Empty}>You belong to no organisation yet. Create one, or ask an admin to add you.<//>`
      : html`<table>
          <thead><tr><th>Organisation</th><th>Your role</th><th>Projects</th></tr></thead>
          <tbody>
            ${orgs.map(
              (o) => html`<tr>
                <td><a href=${href("o", o.name, "projects")}>${o.name}</a></td>
                <td>${o.access.join(", ")}</td>
                <td>${o.applications.map((a) => html`<a href=${href("o", o.name, "p", a.application, "features")}>${a.application}</a> `)}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
    <h2>New organisation</h2>
    <form onSubmit=${create} class="row" aria-label="New organisation">
      <label>Name <input name="name" required pattern="[A-Za-z0-9_\\-]+" /></label>
      <button type="submit" aria-busy=${state.busy}>Create organisation</button>
    </form>
    <${ActionState} state=${state} />`;
}

export function Members({ params }) {
  const { org } = params;
  const load = useLoad(() => get("/organisation/user/list", { org }), [org]);
  const [run, state] = useAction();
  const admin = can(org, "admin");
  const add = (e) => {
    const f = formData(e);
    run(() => post("/organisation/user/create", { user: f.user, access: f.access }, { org }).then(load.reload), `${f.user} added.`);
  };
  const change = (email, access) =>
    run(() => post("/organisation/user/update", { user: email, access }, { org }).then(load.reload), `${email} now has ${access} access.`);
  const remove = (email) => {
    if (confirm(`Remove ${email} from ${org}?`)) run(() => post("/organisation/user/remove", { user: email }, { org }).then(load.reload), `${email} removed.`);
  };
  return html`<h1>Members of ${org}</h1>
    <p>Roles: <strong>read</strong> sees everything, <strong>write</strong> changes features and content,
      <strong>admin</strong> also manages projects, keys and members, <strong>owner</strong> also owners.</p>
    <${ActionState} state=${state} />
    ${!load.data
      ? html`<${Pending} load=${load} what="members" />`
      : html`<table>
          <thead><tr><th>User</th><th>Email</th><th>Role</th>${admin && html`<th>Actions</th>`}</tr></thead>
          <tbody>
            ${load.data.users.map(
              (u) => html`<tr>
                <td>${u.username}</td>
                <td>${u.email}</td>
                <td>
                  ${admin
                    ? html`<select aria-label=${`Role of ${u.email}`} value=${u.roles[0]} onChange=${(e) => change(u.email, e.target.value)}>
                        ${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}
                      </select>`
                    : u.roles.join(", ")}
                </td>
                ${admin && html`<td><button class="secondary outline" onClick=${() => remove(u.email)}>Remove</button></td>`}
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${admin &&
    html`<h2>Add a member</h2>
      <form onSubmit=${add} class="row" aria-label="Add a member">
        <label>Email of an existing user <input name="user" type="email" required /></label>
        <label>Role <select name="access">${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></label>
        <button type="submit" aria-busy=${state.busy}>Add member</button>
      </form>`}
    <${ApiKeys} org=${org} />`;
}

function ApiKeys({ org }) {
  const admin = can(org, "admin");
  const load = useLoad(() => (admin ? get(`/organisations/${seg(org)}/api-keys`) : Promise.resolve(null)), [org, admin]);
  const [run, state] = useAction();
  if (!admin) return null;
  const create = (e) => {
    const f = formData(e);
    run(
      () => post(`/organisations/${seg(org)}/api-keys`, { name: f.name, scope: f.scope }).then((k) => (load.reload(), k)),
      (k) => html`New key (shown once): <code class="secret">${k.key}</code> <${CopyButton} text=${k.key} />`,
    );
  };
  const revoke = (id) => run(() => del(`/organisations/${seg(org)}/api-keys/${seg(id)}`).then(load.reload), "Key revoked.");
  const keys = load.data || [];
  return html`<h2>API keys for scripts</h2>
    <p>A script uses the same admin API as this page, with an API key instead of a sign-in.</p>
    <${ActionState} state=${state} />
    ${!load.data
      ? html`<${Pending} load=${load} what="API keys" />`
      : keys.length === 0
        ? html`<${Empty}>No API keys.<//>`
        : html`<table>
            <thead><tr><th>Name</th><th>Scope</th><th>Prefix</th><th>Created</th><th>Last used</th><th></th></tr></thead>
            <tbody>
              ${keys.map(
                (k) => html`<tr>
                  <td>${k.name}</td><td>${k.scope}</td><td><code>${k.prefix}</code></td><td>${when(k.createdAt)}</td>
                  <td>${when(k.lastUsedAt)}</td>
                  <td>${k.revokedAt ? "revoked" : html`<button class="secondary outline" onClick=${() => revoke(k.id)}>Revoke</button>`}</td>
                </tr>`,
              )}
            </tbody>
          </table>`}
    <form onSubmit=${create} class="row" aria-label="New API key">
      <label>Name <input name="name" required /></label>
      <label>Scope <select name="scope">${["read", "write", "admin"].map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <button type="submit">Create API key</button>
    </form>`;
}
