// A before/after pair of JSON values as the lines that changed: each leaf is named by its path
// (targets[0].distribution[0].percentage) and shown as removed, added or changed, so a reviewer
// reads what a change does without comparing two documents by eye.
import { html } from "./html.js";

function leaves(value, path, out) {
  if (value !== null && typeof value === "object" && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) leaves(v, Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k, out);
  } else {
    out.set(path || "(value)", JSON.stringify(value));
  }
  return out;
}

// [{path, before, after}] of every leaf that differs (before or after undefined when absent).
export function diffOf(before, after) {
  const a = leaves(before, "", new Map());
  const b = leaves(after, "", new Map());
  const paths = [...new Set([...a.keys(), ...b.keys()])];
  // An empty list or object on one side whose other side has entries says nothing the entries'
  // own rows do not ("targets: [] → absent" above "targets[0].name: absent → …").
  const filled = (side, p) => [...side.keys()].some((k) => k.startsWith(p + "[") || k.startsWith(p + "."));
  const hollow = (p) => (["[]", "{}"].includes(a.get(p)) && filled(b, p)) || (["[]", "{}"].includes(b.get(p)) && filled(a, p));
  return paths.filter((p) => a.get(p) !== b.get(p) && !hollow(p)).map((p) => ({ path: p, before: a.get(p), after: b.get(p) }));
}

export function Diff({ before, after, label }) {
  const rows = diffOf(before, after);
  if (rows.length === 0) return html`<p class="empty">No difference.</p>`;
  return html`<table class="diff" aria-label=${label || "Changes"}>
    <thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead>
    <tbody>
      ${rows.map(
        (r) => html`<tr data-diff-path=${r.path}>
          <td><code>${r.path}</code></td>
          <td class="diff-del">${r.before === undefined ? html`<em>absent</em>` : html`<del><code>${r.before}</code></del>`}</td>
          <td class="diff-add">${r.after === undefined ? html`<em>absent</em>` : html`<ins><code>${r.after}</code></ins>`}</td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}
