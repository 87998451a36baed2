// Airborne for this project (an application): files, packages, dimensions and cohorts, releases
// with their traffic ramp (up and down), conclude and discard, and which release the edge
// serves a given x-dimensions context.
import { useState } from "preact/hooks";
import { get, post, seg } from "../api.js";
import { html } from "../html.js";
import { can } from "../session.js";
import { ActionState, Badge, Empty, ErrorBox, Pending, formData, useAction, useLoad, when } from "../ui.js";

export function Airborne({ params }) {
  const { org, project } = params;
  const h = { org, app: project };
  const load = useLoad(
    () =>
      Promise.all([
        get("/file/list", { ...h, query: { per_page: 200 } }),
        get("/packages/list", { ...h, query: { all: true } }),
        get("/organisations/applications/dimension/list", { ...h, query: { all: true } }),
        get("/releases/list", { ...h, query: { all: true } }),
      ]),
    [org, project],
  );
  const [run, state] = useAction();
  const write = can(org, "write");
  if (!load.data) return html`<${Pending} load=${load} what="Airborne" />`;
  const [files, packages, dimensions, releases] = load.data;
  const act = (fn, notice) => run(() => fn().then(load.reload), notice);
  return html`<h1>Airborne releases of ${project}</h1>
    <${ActionState} state=${state} />
    <${Releases} releases=${releases.data} h=${h} write=${write} act=${act} />
    <${WhichRelease} org=${org} project=${project} />
    <${Dimensions} dimensions=${dimensions.data} h=${h} write=${write} act=${act} />
    <${Files} files=${files.files} h=${h} write=${write} act=${act} />
    <${Packages} packages=${packages.data} h=${h} write=${write} act=${act} />`;
}

function Releases({ releases, h, write, act }) {
  const create = (e) => {
    const f = formData(e);
    const dimensions = Object.fromEntries(
      f.dimensions
        .split(";")
        .map((p) => p.split("=").map((x) => x.trim()))
        .filter(([k, v]) => k && v !== undefined),
    );
    const body = { dimensions, config: { properties: f.properties ? JSON.parse(f.properties) : {} } };
    if (f.package_id) body.package_id = f.package_id;
    act(() => post("/releases", body, h), "Release created.");
  };
  return html`<h2>Releases</h2>
    ${releases.length === 0
      ? html`<${Empty}>No releases yet. The first release of an application goes live at once.<//>`
      : releases.map((r) => html`<${Release} key=${r.id} r=${r} h=${h} write=${write} act=${act} />`)}
    ${write &&
    html`<details>
      <summary>New release</summary>
      <form onSubmit=${create} aria-label="New release">
        <div class="row">
          <label>Dimensions (k=v;k2=v2, empty: everyone) <input name="dimensions" /></label>
          <label>Package (version:N or tag:T, empty: newest) <input name="package_id" /></label>
        </div>
        <label>Config properties (JSON) <input name="properties" placeholder='{"feature_x": true}' /></label>
        <button type="submit">Create release</button>
      </form>
    </details>`}`;
}

function Release({ r, h, write, act }) {
  const x = r.experiment;
  const [traffic, setTraffic] = useState(x.traffic_percentage);
  const open = x.status === "CREATED" || x.status === "INPROGRESS";
  const dims = Object.entries(r.dimensions || {}).map(([k, v]) => `${k}=${v}`).join("; ") || "everyone";
  const id = `release-${r.id}`;
  return html`<article aria-labelledby=${id} data-release=${r.id} data-status=${x.status}>
    <header>
      <strong id=${id}>Release ${r.id}</strong> · package v${x.package_version} · config ${x.config_version} · ${dims}
      <${Badge} on=${x.status === "CONCLUDED" ? true : x.status === "DISCARDED" ? false : undefined} warn=${open}>${x.status}<//>
      ${x.chosen_variant && html` chosen <code>${x.chosen_variant.replace(`${r.id}-`, "")}</code>`}
      <small> created ${when(r.created_at)}</small>
    </header>
    ${open &&
    html`<div class="row">
      <label>Traffic on this release: <output for=${`${id}-ramp`} data-traffic>${traffic}%</output>
        <input id=${`${id}-ramp`} type="range" min="0" max="100" step="1" value=${traffic} disabled=${!write}
          onInput=${(e) => setTraffic(Number(e.target.value))} aria-label=${`Traffic percentage of release ${r.id}`} />
      </label>
      ${write &&
      html`<button type="button" disabled=${traffic === x.traffic_percentage}
          onClick=${() => act(() => post(`/releases/${seg(r.id)}/ramp`, { traffic_percentage: traffic }, h), `Release ${r.id} ramped to ${traffic}%.`)}>
          Apply ramp
        </button>
        <button type="button" class="secondary" onClick=${() => act(() => post(`/releases/${seg(r.id)}/conclude`, { chosen_variant: "experimental" }, h), `Release ${r.id} concluded: it is live.`)}>
          Conclude: ship it
        </button>
        <button type="button" class="secondary" onClick=${() => act(() => post(`/releases/${seg(r.id)}/conclude`, { chosen_variant: "control" }, h), `Release ${r.id} concluded with control.`)}>
          Conclude: keep control
        </button>
        <button type="button" class="secondary outline" onClick=${() => confirm(`Discard release ${r.id}?`) && act(() => post(`/releases/${seg(r.id)}/discard`, {}, h), `Release ${r.id} discarded.`)}>
          Discard
        </button>`}
    </div>`}
  </article>`;
}

function WhichRelease({ org, project }) {
  const [dims, setDims] = useState("");
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const ask = async (e) => {
    e.preventDefault();
    try {
      setAnswer(await get("/live/release", { org, app: project, query: { dimensions: dims } }));
      setError(null);
    } catch (err) {
      setError(err);
      setAnswer(null);
    }
  };
  const a = answer?.answer;
  return html`<h2>Which release would a device get?</h2>
    <form class="row" onSubmit=${ask} aria-label="Which release">
      <label>x-dimensions (k=v;k2=v2, e.g. <code>os=android;toss=42</code>)
        <input value=${dims} onInput=${(e) => setDims(e.target.value)} name="x-dimensions" />
      </label>
      <button type="submit">Ask the edge</button>
    </form>
    <${ErrorBox} error=${error} />
    ${answer &&
    html`<div role="status" data-which-release>
      ${answer.reachable
        ? html`<p>The edge ${answer.edge} answered ${answer.status}${answer.status === 200 && a?.config
            ? html`: package v${a.package.version}, config ${a.version}, properties <code data-release-properties>${JSON.stringify(a.config.properties)}</code>`
            : answer.status === 404 ? ": no release for this context" : ""}.</p>`
        : html`<p class="error-box">No answer: ${answer.error}${answer.edge ? ` (${answer.edge})` : ""}.</p>`}
      <details><summary>Full answer</summary><pre>${JSON.stringify(a, null, 2)}</pre></details>
    </div>`}`;
}

function Dimensions({ dimensions, h, write, act }) {
  const create = (e) => {
    const f = formData(e);
    const body = { dimension: f.dimension, description: f.description || f.dimension, dimension_type: f.type };
    if (f.type === "cohort") body.depends_on = f.depends_on;
    else body.schema = { type: "string" };
    act(() => post("/organisations/applications/dimension/create", body, h), `Dimension ${f.dimension} created.`);
  };
  const checkpoint = (d) => (e) => {
    const f = formData(e);
    act(() => post(`/organisations/applications/dimension/${seg(d.dimension)}/cohort/checkpoint`, { name: f.name, value: f.value, comparator: f.comparator }, h), `Cohort ${f.name} added.`);
  };
  const group = (d) => (e) => {
    const f = formData(e);
    const members = f.members.split(",").map((m) => m.trim()).filter(Boolean);
    act(() => post(`/organisations/applications/dimension/${seg(d.dimension)}/cohort/group`, { name: f.name, members }, h), `Group ${f.name} added.`);
  };
  return html`<h2>Dimensions and cohorts</h2>
    ${dimensions.length === 0
      ? html`<${Empty}>No dimensions: every release targets everyone.<//>`
      : html`<table>
          <thead><tr><th>#</th><th>Dimension</th><th>Kind</th><th>Definition</th></tr></thead>
          <tbody>
            ${dimensions.map(
              (d) => html`<tr>
                <td>${d.position}</td><td><code>${d.dimension}</code><br /><small>${d.description}</small></td>
                <td>${d.dimension_type}${d.depends_on ? ` of ${d.depends_on}` : ""}</td>
                <td>
                  <pre>${JSON.stringify(d.schema, null, 1)}</pre>
                  ${write &&
                  d.dimension_type === "cohort" &&
                  html`<details><summary>Add a cohort</summary>
                    <form class="row" onSubmit=${checkpoint(d)} aria-label=${`New checkpoint cohort of ${d.dimension}`}>
                      <label>Name <input name="name" required /></label>
                      <label>Comparator <select name="comparator">${["semver_ge", "semver_gt", "str_ge", "str_gt"].map((c) => html`<option>${c}</option>`)}</select></label>
                      <label>Value <input name="value" required /></label>
                      <button type="submit">Add checkpoint</button>
                    </form>
                    <form class="row" onSubmit=${group(d)} aria-label=${`New group cohort of ${d.dimension}`}>
                      <label>Name <input name="name" required /></label>
                      <label>Members (comma-separated) <input name="members" required /></label>
                      <button type="submit">Add group</button>
                    </form>
                  </details>`}
                </td>
              </tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>New dimension</summary>
      <form class="row" onSubmit=${create} aria-label="New dimension">
        <label>Name <input name="dimension" required /></label>
        <label>Description <input name="description" /></label>
        <label>Kind <select name="type"><option value="standard">standard</option><option value="cohort">cohort</option></select></label>
        <label>Cohort of (standard dimension) <input name="depends_on" /></label>
        <button type="submit">Create dimension</button>
      </form>
    </details>`}`;
}

function Files({ files, h, write, act }) {
  const create = (e) => {
    const f = formData(e);
    const body = { file_path: f.file_path, url: f.url, tag: f.tag };
    if (f.size) Object.assign(body, { size: Number(f.size), checksum: f.checksum });
    act(() => post("/file", body, h), `File ${f.file_path} recorded.`);
  };
  return html`<h2>Files</h2>
    ${files.length === 0
      ? html`<${Empty}>No files yet.<//>`
      : html`<table>
          <thead><tr><th>File</th><th>Version</th><th>Tag</th><th>Size</th><th>State</th></tr></thead>
          <tbody>
            ${files.map(
              (f) => html`<tr><td><code>${f.file_path}</code><br /><small>${f.url}</small></td><td>${f.version}</td><td>${f.tag}</td><td>${f.size || ""}</td>
                <td><${Badge} on=${f.status === "ready"}>${f.status === "ready" ? "verified" : "unverified"}<//></td></tr>`,
            )}
          </tbody>
        </table>`}
    ${write &&
    html`<details><summary>Record a file</summary>
      <form onSubmit=${create} aria-label="New file">
        <div class="row">
          <label>Path <input name="file_path" required /></label>
          <label>URL <input name="url" type="url" required /></label>
          <label>Tag <input name="tag" required /></label>
        </div>
        <div class="row">
          <label>Size in bytes (with checksum) <input name="size" type="number" min="1" /></label>
          <label>SHA-256 <input name="checksum" pattern="[0-9A-Fa-f]{64}" /></label>
        </div>
        <button type="submit">Record file</button>
      </form>
    </details>`}`;
}

function Packages({ packages, h, write, act }) {
  const create = (e) => {
    const f = formData(e);
    const files = f.files.split(",").map((x) => x.trim()).filter(Boolean);
    act(() => post("/packages", { index: f.index, tag: f.tag, files }, h), "Package created.");
  };
  return html`<h2>Packages</h2>
    ${packages.length === 0
      ? html`<${Empty}>No packages yet.<//>`
      : html`<table>
          <thead><tr><th>Version</th><th>Tag</th><th>Index</th><th>Files</th></tr></thead>
          <tbody>${packages.map((p) => html`<tr><td>${p.version}</td><td>${p.tag}</td><td><code>${p.index}</code></td><td>${p.files.join(", ")}</td></tr>`)}</tbody>
        </table>`}
    ${write &&
    html`<details><summary>New package</summary>
      <form class="row" onSubmit=${create} aria-label="New package">
        <label>Index file (path@tag:T) <input name="index" required /></label>
        <label>Tag <input name="tag" required /></label>
        <label>Files (comma-separated keys) <input name="files" /></label>
        <button type="submit">Create package</button>
      </form>
    </details>`}`;
}
