"""OpenID Connect login against one configured issuer (Airborne's ``/users/oauth/*``).

The authorization code flow with every protection the specifications ask of a confidential
client:

* **Discovery.** The issuer's ``/.well-known/openid-configuration`` gives the endpoints and the
  JWKS; its ``issuer`` must be the configured one exactly (OpenID Connect Discovery §4.3). Both
  are cached (:data:`METADATA_TTL`); a token signed with a key the cached JWKS does not hold
  re-reads the JWKS once (key rotation).
* **State** (CSRF, RFC 6749 §10.12): 256 random bits, stored server-side (only its SHA-256, table
  ``oauth_logins``) with an expiry, and consumed by the first login that presents it. A code can
  therefore be exchanged through us once, and only with the state it was issued with.
* **PKCE** (RFC 7636, S256): the verifier never leaves the control plane; a code intercepted on
  its way back is useless without it, and a code from another login fails the exchange.
* **Nonce** (OIDC Core §3.1.2.1): bound to the state; the ID token must carry it.
* **ID token** (OIDC Core §3.1.3.7): signature by the issuer's JWKS with an asymmetric algorithm
  (never ``none`` or HS*), ``iss`` the issuer, ``aud`` holding the client id (``azp`` it too when
  there are several audiences), ``exp``/``iat`` present and valid.

The client authenticates to the token endpoint with HTTP Basic (``client_secret_basic``, the
default of RFC 6749) unless the issuer only offers ``client_secret_post``. The secret is never
logged or put in an error. Every failure is an :class:`OidcError` whose ``code`` and status the
route answers in Airborne's error shape.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

log = logging.getLogger("control_plane.oidc")

# Seconds the discovery document and JWKS are reused before they are read again.
METADATA_TTL = 3600.0
# Seconds a login may take between /users/oauth/url and /users/oauth/login.
LOGIN_TTL = 600
# Seconds any one request to the issuer may take.
HTTP_TIMEOUT = 10.0
# Clock skew tolerated on exp/iat.
LEEWAY = 60
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
SCOPES = ("openid", "email", "profile")


class OidcError(Exception):
    """A login that cannot go on: HTTP status, stable code, message (no secret in it)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_url: str
    signup: bool = False


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]
    userinfo_endpoint: str | None


@dataclass(frozen=True)
class PendingLogin:
    """What ``/users/oauth/url`` keeps server-side for one state."""

    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Identity:
    """The verified ID token's subject."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    username: str | None


def state_hash(state: str) -> str:
    """How a state is stored and looked up (the state itself is a bearer secret until used)."""
    return hashlib.sha256(state.encode()).hexdigest()


def new_login() -> PendingLogin:
    return PendingLogin(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64))


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _unavailable(what: str, e: Exception) -> OidcError:
    log.warning("the OIDC issuer failed (%s): %s", what, type(e).__name__)
    return OidcError(502, "provider_unavailable", f"the identity provider did not answer the {what} request")


class OidcClient:
    """One configured issuer; cheap per call once discovery and the JWKS are cached."""

    def __init__(self, config: OidcConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._metadata: tuple[float, Metadata] | None = None
        self._jwks: tuple[float, jwt.PyJWKSet] | None = None

    def _client(self) -> httpx.AsyncClient:
        # Redirects are not followed: every URL comes from configuration or discovery.
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False, transport=self._transport)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                r = await client.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            doc = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise _unavailable(what, e) from None
        if not isinstance(doc, dict):
            raise OidcError(502, "provider_unavailable", f"the identity provider's {what} is not a JSON object")
        return doc

    async def metadata(self) -> Metadata:
        cached = self._metadata
        if cached is not None and time.monotonic() - cached[0] < METADATA_TTL:
            return cached[1]
        issuer = self.config.issuer.rstrip("/")
        doc = await self._get_json(issuer + "/.well-known/openid-configuration", "discovery")
        if doc.get("issuer") != self.config.issuer:
            raise OidcError(502, "provider_misconfigured", "the discovery document names another issuer")
        try:
            meta = Metadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                token_auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]),
                userinfo_endpoint=str(doc["userinfo_endpoint"]) if doc.get("userinfo_endpoint") else None,
            )
        except KeyError as e:
            raise OidcError(502, "provider_misconfigured", f"the discovery document has no {e.args[0]}") from None
        self._metadata = (time.monotonic(), meta)
        return meta

    async def _keys(self, *, fresh: bool) -> jwt.PyJWKSet:
        cached = self._jwks
        if not fresh and cached is not None and time.monotonic() - cached[0] < METADATA_TTL:
            return cached[1]
        meta = await self.metadata()
        try:
            keys = jwt.PyJWKSet.from_dict(await self._get_json(meta.jwks_uri, "JWKS"))
        except jwt.PyJWKSetError as e:
            raise OidcError(502, "provider_misconfigured", f"the identity provider's JWKS is unusable: {e}") from None
        self._jwks = (time.monotonic(), keys)
        return keys

    async def authorization_url(self, login: PendingLogin, *, offline: bool = False, idp: str | None = None) -> str:
        meta = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_url,
            "scope": " ".join((*SCOPES, "offline_access") if offline else SCOPES),
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": s256(login.code_verifier),
            "code_challenge_method": "S256",
        }
        if offline:
            params["prompt"] = "consent"  # OIDC Core §11: offline_access is ignored without it
        if idp:
            params["kc_idp_hint"] = idp  # Keycloak's identity-provider hint, as Airborne passes it
        separator = "&" if "?" in meta.authorization_endpoint else "?"
        return meta.authorization_endpoint + separator + urlencode(params)

    async def exchange(self, code: str, login: PendingLogin) -> Identity:
        """The verified identity behind ``code`` (issued for ``login``)."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_url,
            "code_verifier": login.code_verifier,
        }
        # RFC 6749 §2.3.1: form-urlencode id and secret before Basic (httpx does not); Basic is an
        # empty auth when the issuer only takes the secret in the form.
        auth: httpx.Auth = httpx.BasicAuth(_form(self.config.client_id), _form(self.config.client_secret))
        if "client_secret_basic" not in meta.token_auth_methods and "client_secret_post" in meta.token_auth_methods:
            form |= {"client_id": self.config.client_id, "client_secret": self.config.client_secret}
            auth = _NO_AUTH
        try:
            async with self._client() as client:
                r = await client.post(meta.token_endpoint, data=form, auth=auth, headers={"Accept": "application/json"})
        except httpx.HTTPError as e:
            raise _unavailable("token", e) from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            if r.status_code == 400 and error == "invalid_grant":
                # A used, expired or foreign code, or a verifier it was not issued for.
                raise OidcError(400, "invalid_grant", "the authorization code was refused by the identity provider")
            log.warning("the OIDC token endpoint answered %d (%s)", r.status_code, error)
            raise OidcError(502, "token_exchange_failed", "the identity provider did not issue an ID token")
        identity = await self.verify(body["id_token"], login.nonce)
        if identity.email is None and isinstance(body.get("access_token"), str):
            # Many providers keep profile claims out of the ID token when an access token is
            # issued (OIDC Core §5.4): the UserInfo endpoint has them.
            identity = await self._with_userinfo(identity, body["access_token"])
        return identity

    async def _with_userinfo(self, identity: Identity, access_token: str) -> Identity:
        meta = await self.metadata()
        if meta.userinfo_endpoint is None:
            return identity
        try:
            async with self._client() as client:
                r = await client.get(
                    meta.userinfo_endpoint,
                    headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                )
            r.raise_for_status()
            info = r.json()
        except (httpx.HTTPError, ValueError) as e:
            raise _unavailable("UserInfo", e) from None
        # OIDC Core §5.3.2: the UserInfo response is about the ID token's subject, or it is ignored.
        if not isinstance(info, dict) or info.get("sub") != identity.subject:
            raise OidcError(401, "invalid_id_token", "the UserInfo response is about another subject")
        email, username = info.get("email"), info.get("preferred_username")
        return Identity(
            issuer=identity.issuer,
            subject=identity.subject,
            email=email.lower() if isinstance(email, str) else None,
            email_verified=info.get("email_verified") is True,
            username=username if isinstance(username, str) else identity.username,
        )

    async def verify(self, id_token: str, nonce: str) -> Identity:
        """The claims of a valid ID token for this client and login (OIDC Core §3.1.3.7)."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise OidcError(401, "invalid_id_token", "the ID token is malformed") from None
        algorithm = header.get("alg")
        if algorithm not in ID_TOKEN_ALGORITHMS:
            raise OidcError(401, "invalid_id_token", f"ID tokens signed with {algorithm!r} are not accepted")
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[algorithm],
                audience=self.config.client_id,
                issuer=self.config.issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as e:
            raise OidcError(401, "invalid_id_token", f"the ID token is not valid: {e}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise OidcError(401, "invalid_id_token", "the ID token was issued to another party (azp)")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise OidcError(401, "invalid_nonce", "the ID token does not carry this login's nonce")
        email = claims.get("email")
        username = claims.get("preferred_username")
        return Identity(
            issuer=self.config.issuer,
            subject=str(claims["sub"]),
            email=email.lower() if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            username=username if isinstance(username, str) else None,
        )

    async def _key(self, kid: Any) -> jwt.PyJWK:
        for fresh in (False, True):  # a key the cached set lacks: the issuer may have rotated
            keys = await self._keys(fresh=fresh)
            matching = [k for k in keys.keys if kid is None or k.key_id == kid]
            if len(matching) == 1 or (kid is not None and matching):
                return matching[0]
        raise OidcError(401, "invalid_id_token", "the ID token is signed with a key the issuer does not publish")


class _NoAuth(httpx.Auth):
    """No Authorization header (the client authenticates in the form)."""


_NO_AUTH = _NoAuth()


def _form(value: str) -> str:
    """``application/x-www-form-urlencoded`` encoding of one value (RFC 6749 Appendix B)."""
    return urlencode({"": value})[1:]
