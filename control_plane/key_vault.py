"""Secrets the control plane must read back (SDK keys that admins read as the DevCycle CLI
expects, integration tokens), encrypted at rest with AES-256-GCM.

The key-encryption secret is kept like the JWT signing secret (:func:`settings.load_secret`):
configured (``FLAGEDGE_KEY_ENCRYPTION_SECRET``) or generated once into the data dir (mode 0600),
and copied by ``backup``/``restore`` beside the store, without which the ciphertexts are
unreadable. Replicas sharing a PostgreSQL store must be given the same one (they refuse to start
without it, :func:`settings.from_namespace`): a secret per data dir would seal values that the
other replicas cannot open. The AES key is the SHA-256 of the secret, so any string of enough entropy works.
Each ciphertext carries a version byte and its random 96-bit nonce; the associated data binds it
to its row (an SDK key's hash), so a ciphertext copied onto another row does not decrypt."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE = 12


class KeyVault:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the key-encryption secret needs at least 16 characters")
        self._aead = AESGCM(hashlib.sha256(secret.encode()).digest())

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return base64.b64encode(_VERSION + nonce + sealed).decode()

    def open(self, ciphertext: str, bound_to: str) -> str | None:
        """The plaintext, or None when it cannot be read (another secret, another row, damage):
        the caller shows the value redacted rather than failing the whole response."""
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except ValueError:
            return None
        if raw[:1] != _VERSION or len(raw) < 1 + _NONCE + 16:
            return None
        try:
            return self._aead.decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], bound_to.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            return None
