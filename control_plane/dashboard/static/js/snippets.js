// Copyable SDK set-ups for an environment: the real packages' options, pointed at the edge.
// A key is shown in full only right after it was created; otherwise its prefix stands in.
export function snippets({ edge, env, fresh }) {
  const base = edge || "https://EDGE-HOST:8090";
  const key = (kind) => {
    const live = env.sdkKeys[kind].filter((k) => !k.compromised);
    const k = live[live.length - 1];
    if (!k) return `<no active ${kind} key: rotate to create one>`;
    return fresh[k.prefix] || `<${kind} key starting ${k.prefix}>`;
  };
  return [
    {
      title: "Browser (@reflag/browser-sdk)",
      code: `import { ReflagClient } from "@reflag/browser-sdk";

const reflag = new ReflagClient({
  publishableKey: "${key("client")}",
  apiBaseUrl: "${base}",
  user: { id: "user-1", email: "ada@example.com" },
});
await reflag.initialize();
reflag.getFlag("my-flag").isEnabled;`,
    },
    {
      title: "Node.js (@reflag/node-sdk)",
      code: `import { ReflagClient } from "@reflag/node-sdk";

const reflag = new ReflagClient({ secretKey: "${key("server")}", apiBaseUrl: "${base}" });
await reflag.initialize();
reflag.getFlags({ user: { id: "user-1" } });`,
    },
    {
      title: "DevCycle server SDK (Node.js)",
      code: `import { initializeDevCycle } from "@devcycle/nodejs-server-sdk";

const devcycle = await initializeDevCycle("${key("server")}", {
  configCDNURI: "${base}",
  eventsAPIURI: "${base}",
}).onClientInitialized();
devcycle.variableValue({ user_id: "user-1" }, "my-variable", false);`,
    },
    {
      title: "OpenFeature (OFREP), curl",
      code: `curl -s -X POST ${base}/ofrep/v1/evaluate/flags \\
  -H "Authorization: Bearer ${key("server")}" -H "Content-Type: application/json" \\
  -d '{"context": {"targetingKey": "user-1"}}'`,
    },
    {
      title: "Evaluated flags, curl",
      code: `curl -s "${base}/features/evaluated?publishableKey=${key("client")}&context.user.id=user-1"`,
    },
  ];
}
