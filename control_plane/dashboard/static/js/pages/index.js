// Every page of the dashboard: its hash route, its title, and where the side navigation lists
// it ("org": under the organisation, "project": under the project, none: reached by links).
// A new page is one module and one line here.
import { Airborne } from "./airborne.js";
import { Audit } from "./audit.js";
import { Audiences } from "./audiences.js";
import { ProjectChangeRequests } from "./changes.js";
import { Feature } from "./feature.js";
import { Features } from "./features.js";
import { Live } from "./live.js";
import { Members, Organisations } from "./orgs.js";
import { Environments, Projects } from "./projects.js";
import { Releaseo } from "./releaseo.js";
import { Settings } from "./settings.js";
import { Sytwm } from "./sytwm.js";

export const PAGES = [
  { path: "/", title: "Organisations", component: Organisations },
  { path: "/o/:org/projects", title: "Projects", nav: "org", component: Projects },
  { path: "/o/:org/members", title: "Members and roles", nav: "org", component: Members },
  { path: "/o/:org/sytwm", title: "Posts and feedback", nav: "org", component: Sytwm },
  { path: "/o/:org/p/:project/features", title: "Features", nav: "project", component: Features },
  { path: "/o/:org/p/:project/features/:feature", title: "Feature", component: Feature },
  { path: "/o/:org/p/:project/audiences", title: "Audiences", nav: "project", component: Audiences },
  { path: "/o/:org/p/:project/environments", title: "Environments and keys", nav: "project", component: Environments },
  { path: "/o/:org/p/:project/airborne", title: "Airborne releases", nav: "project", component: Airborne },
  { path: "/o/:org/p/:project/releaseo", title: "Releaseo", nav: "project", component: Releaseo },
  { path: "/o/:org/p/:project/live", title: "Live state", nav: "project", component: Live },
  { path: "/o/:org/p/:project/change-requests", title: "Change requests", nav: "project", component: ProjectChangeRequests },
  { path: "/o/:org/p/:project/audit", title: "Audit log", nav: "project", component: Audit },
  { path: "/o/:org/p/:project/settings", title: "Project settings", nav: "project", component: Settings },
];
