// The admin API, called exactly as a script calls it: JSON over fetch with the user's bearer
// token. Errors of every shape the API speaks (our envelope, Airborne's, DevCycle's) become one
// ApiError with a message and the field-level details.
import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, message, details = [], requestId = null) {
    super(message);
    this.status = status;
    this.details = details;
    this.requestId = requestId;
  }
}

function errorOf(status, data, requestId) {
  const e = data?.error;
  if (e && typeof e === "object") return new ApiError(status, e.message, e.details || [], e.request_id || requestId);
  if (typeof e === "string" && data.statusCode === undefined)
    return new ApiError(status, e, data.details || [], data.request_id || requestId);
  if (data?.message !== undefined) {
    const msg = Array.isArray(data.message) ? data.message.join("; ") : data.message;
    return new ApiError(status, msg, data.details || [], data.request_id || requestId);
  }
  return new ApiError(status, `the server answered ${status}`, [], requestId);
}

let refreshing = null;

async function refresh() {
  // One refresh at a time: the server rotates the refresh token and treats a reuse as theft.
  refreshing ??= (async () => {
    const r = await fetch("/users/token/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refreshToken }),
    });
    if (!r.ok) return false;
    session.start(await r.json());
    return true;
  })().finally(() => (refreshing = null));
  return refreshing;
}

// `org` and `app` become the x-organisation / x-application headers the routes take.
export async function api(method, path, { body, query, org, app, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (org) headers["x-organisation"] = org;
  if (app) headers["x-application"] = app;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = path;
  if (query) {
    const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""));
    if ([...q].length) url += "?" + q;
  }
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && retry && session.refreshToken && !path.startsWith("/users/")) {
    if (await refresh()) return api(method, path, { body, query, org, app, retry: false });
    session.end();
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 200) };
  }
  if (!r.ok) throw errorOf(r.status, data, r.headers.get("x-request-id"));
  return data;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts) => api("POST", path, { ...opts, body: body ?? {} });
export const patch = (path, body, opts) => api("PATCH", path, { ...opts, body });
export const put = (path, body, opts) => api("PUT", path, { ...opts, body: body ?? {} });
export const del = (path, opts) => api("DELETE", path, opts);

// Path segments are user-chosen keys: always encode them.
export const seg = encodeURIComponent;
