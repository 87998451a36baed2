// Live state: the version the control plane published, each configured edge's readiness and
// version (its /ready, asked by the control plane), and per environment of the project the
// active features and the flag checks SDKs reported.
import { useEffect } from "preact/hooks";
import { get, seg } from "../api.js";
import { html } from "../html.js";
import { Badge, Empty, Pending, useLoad, when } from "../ui.js";

const POLL_MS = 5000;

export function Live({ params }) {
  const { org, project } = params;
  const load = useLoad(() => Promise.all([get("/live/edges"), get(`/v1/projects/${seg(project)}/live`, { org })]), [org, project]);
  useEffect(() => {
    const t = setInterval(load.reload, POLL_MS);
    return () => clearInterval(t);
  }, []);
  if (!load.data) return html`<${Pending} load=${load} what="live state" />`;
  const [edges, live] = load.data;
  const published = edges.controlPlane.version;
  return html`<h1>Live state</h1>
    <p>Control plane published version <strong data-published-version>${published}</strong>
      ${edges.controlPlane.ok ? html` <${Badge} on=${true}>publishing<//>` : html` <${Badge} on=${false}>publish failing<//>`}
      <small> (refreshes every ${POLL_MS / 1000} s)</small></p>
    <h2>Edges</h2>
    ${edges.edges.length === 0
      ? html`<${Empty}>No edges configured: start the control plane with <code>--edge-urls</code> (or <code>FLAGEDGE_EDGE_URLS</code>) to see them here.<//>`
      : html`<table>
          <thead><tr><th>Edge</th><th>Ready</th><th>Version</th><th>Environments</th><th>Problems</th></tr></thead>
          <tbody>
            ${edges.edges.map(
              (e) => html`<tr data-edge=${e.url}>
                <td><code>${e.url}</code></td>
                <td>${!e.reachable ? html`<${Badge} on=${false}>unreachable<//>` : html`<${Badge} on=${e.ready}>${e.ready ? "ready" : `not ready (${e.status})`}<//>`}</td>
                <td>${e.version ?? ""} ${e.reachable && e.version !== published ? html`<${Badge} warn=${true}>${e.version < published ? "behind" : "ahead"}<//>` : ""}</td>
                <td>${e.environments ?? ""}</td>
                <td>${e.error || (e.notReady || []).join(", ")}</td>
              </tr>`,
            )}
          </tbody>
        </table>`}
    <h2>Environments of ${project}</h2>
    ${live.environments.length === 0
      ? html`<${Empty}>No environments.<//>`
      : live.environments.map(
          (env) => html`<section>
            <h3>${env.name} <small><code>${env.key}</code> · ${env.activeFeatures} active feature${env.activeFeatures === 1 ? "" : "s"}</small></h3>
            ${env.flagChecks.length === 0
              ? html`<${Empty}>No flag checks reported by SDKs in this environment yet.<//>`
              : html`<table>
                  <thead><tr><th>Flag</th><th>Checks reported</th><th>Last</th></tr></thead>
                  <tbody>${env.flagChecks.map((c) => html`<tr><td><code>${c.flag}</code></td><td>${c.count}</td><td>${when(c.last)}</td></tr>`)}</tbody>
                </table>`}
          </section>`,
        )}`;
}
