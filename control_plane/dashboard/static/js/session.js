// The signed-in user: tokens and the /user view, kept in sessionStorage (gone when the tab
// closes, never sent by the browser on its own: requests carry them as Authorization: Bearer,
// so there is no cookie a cross-site request could ride on and no CSRF token is needed).
const KEY = "flagedge.session";
const listeners = new Set();
let state = read();

function read() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function write(next) {
  state = next;
  if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((fn) => fn(state));
}

export const session = {
  get token() {
    return state?.access_token ?? null;
  },
  get refreshToken() {
    return state?.refresh_token ?? null;
  },
  get user() {
    return state?.user ?? null;
  },
  get signedIn() {
    return Boolean(state?.access_token);
  },
  // A login, sign-up or refresh answer: {user_id, organisations, user_token: {...}}.
  start(answer) {
    const { user_token: t, ...user } = answer;
    write({ access_token: t.access_token, refresh_token: t.refresh_token, user: { ...(state?.user || {}), ...user } });
  },
  setUser(view) {
    if (state) write({ ...state, user: { ...state.user, ...view } });
  },
  end() {
    write(null);
  },
  subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};

// Roles, lowest first, as the API ranks them (control_plane/authz.py).
export const ROLES = ["read", "write", "admin", "owner"];

export function roleIn(org) {
  const o = session.user?.organisations?.find((x) => x.name === org);
  return o?.access?.[0] ?? null;
}

// Whether the signed-in user's role in `org` allows `needed`: the page hides what it would not;
// the API enforces it either way.
export function can(org, needed) {
  const role = roleIn(org);
  return role !== null && ROLES.indexOf(role) >= ROLES.indexOf(needed);
}
