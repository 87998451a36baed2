// An OpenID Provider for the end-to-end OIDC login test (tests/e2e/test_airborne_oidc.py).
//
// panva/oidc-provider, certified by the OpenID Foundation, with its development interactions
// (a login form that accepts any name and password, then a consent form): the account id is the
// login name, its email `<login>@example.com` (verified). PKCE is required. Configured from the
// environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI. Prints "ready <issuer>" when it
// listens.
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["flagedge-oidc-e2e-cookie-key"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, preferred_username: id, name: id };
      },
    };
  },
});

provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
