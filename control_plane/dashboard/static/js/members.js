// The organisation's members by user id: audit entries and change requests name people by id
// (GET /organisation/user/list answers each member's user_id), the pages show their names.
import { get } from "./api.js";
import { useLoad } from "./ui.js";

export const REVIEWER_ROLES = ["admin", "owner"]; // DevCycle's Publisher and Owner (approval.py)

export function useMembers(org) {
  const load = useLoad(() => get("/organisation/user/list", { org }).then((r) => r.users), [org]);
  const list = load.data || [];
  const byId = Object.fromEntries(list.map((m) => [m.user_id, m]));
  // "user:<id>" (an audit actor) or a bare id; API keys stay as they are.
  const name = (ref) => {
    const id = String(ref || "").replace(/^user:/, "");
    const m = byId[id];
    return m ? `${m.username} (${m.email})` : ref || "";
  };
  return { list, byId, name, loaded: Boolean(load.data) };
}
