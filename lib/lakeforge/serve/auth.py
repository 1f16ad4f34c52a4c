"""Who is calling, and may they call this model: bearer API keys (compared by SHA-256 hash) or JWTs (verified with
a configured public key or JWKS file, the allowed models in a claim), and a token bucket per caller.

A refusal is logged with its reason and the caller's name when known, never with the token."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from lakeforge.config.serving import ApiKey, ServeSettings
from lakeforge.errors import ConfigError, RequestRefused

log = logging.getLogger(__name__)
CHALLENGE = {"WWW-Authenticate": "Bearer"}  # with every 401


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name (key name or token subject), the models it may call, its rate."""

    name: str
    models: tuple[str, ...]
    rate_per_second: float | None = None
    burst: int | None = None

    def may_call(self, model: str) -> bool:
        return "*" in self.models or model in self.models


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_api_keys(settings: ServeSettings, root: Path) -> tuple[ApiKey, ...]:
    """``serve.api_keys`` plus the entries of ``serve.api_keys_file`` (a YAML list), checked like the config."""
    keys = list(settings.api_keys)
    if settings.api_keys_file:
        path = Path(settings.api_keys_file)
        path = path if path.is_absolute() else root / path
        try:
            entries = yaml.safe_load(path.read_text()) or []
        except OSError as exc:
            raise ConfigError(f"serve.api_keys_file: cannot read {path} ({exc.strerror}); create it with "
                              "python -m lakeforge.serve.keys --file PATH NAME, or remove the setting") from None
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: expected a YAML list of {{name, sha256, models}} entries")
        for i, entry in enumerate(entries):
            try:
                keys.append(ApiKey.model_validate(entry))
            except ValueError as exc:
                raise ConfigError(f"{path}: entry {i}: {exc}") from None
    names = [k.name for k in keys]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"serve.api_keys and {settings.api_keys_file}: names {duplicated} are used twice")
    return tuple(keys)


class Authenticator:
    def __init__(self, settings: ServeSettings, api_keys: tuple[ApiKey, ...], root: Path):
        self._keys = {k.sha256: k for k in api_keys}
        self._jwt = settings.jwt
        self._jwt_keys: dict[str | None, object] = {}
        if self._jwt is not None:
            self._jwt_keys = _jwt_keys(self._jwt.public_key_file, self._jwt.jwks_file, root)

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise RequestRefused(401, "no Authorization header; send Authorization: Bearer <API key or JWT>", CHALLENGE)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise RequestRefused(401, "the Authorization header is not 'Bearer <token>'", CHALLENGE)
        if token.count(".") == 2 and self._jwt is not None:
            return self._verify_jwt(token)
        digest = key_hash(token)
        for known, key in self._keys.items():  # constant-time comparison against every key
            if hmac.compare_digest(known, digest):
                return Principal(key.name, key.models, key.rate_per_second, key.burst)
        raise RequestRefused(401, "unknown API key" if self._keys or self._jwt is None else "invalid token",
                             CHALLENGE)

    def _verify_jwt(self, token: str) -> Principal:
        import jwt

        cfg = self._jwt
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._jwt_keys.get(kid) or (self._jwt_keys.get(None) if len(self._jwt_keys) == 1 else None)
            if key is None:
                raise RequestRefused(401, f"JWT signed with an unknown key (kid {kid!r})", CHALLENGE)
            claims = jwt.decode(token, key=key, algorithms=list(cfg.algorithms), audience=cfg.audience,
                                issuer=cfg.issuer, options={"require": ["exp"], "verify_aud": cfg.audience is not None})
        except jwt.PyJWTError as exc:
            raise RequestRefused(401, f"invalid JWT: {exc}", CHALLENGE) from None
        allowed = claims.get(cfg.models_claim, ())
        models = tuple(allowed.split()) if isinstance(allowed, str) else tuple(str(m) for m in allowed)
        return Principal(str(claims.get("sub", "jwt")), models)


def _jwt_keys(public_key_file: str | None, jwks_file: str | None, root: Path) -> dict[str | None, object]:
    import jwt

    path = Path(public_key_file or jwks_file)
    path = path if path.is_absolute() else root / path
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"serve.jwt: cannot read {path} ({exc.strerror})") from None
    if public_key_file:
        return {None: text}
    try:
        keys = jwt.PyJWKSet.from_dict(json.loads(text)).keys
    except (ValueError, jwt.PyJWTError) as exc:
        raise ConfigError(f"serve.jwt.jwks_file: {path} is not a JWKS document ({exc})") from None
    return {k.key_id: k.key for k in keys}


class RateLimiter:
    """A token bucket per caller: ``burst`` at once, refilled at ``per_second``."""

    def __init__(self, per_second: float, burst: int):
        self.per_second, self.burst = per_second, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, principal: Principal) -> float:
        """0 when the request may go; otherwise the seconds until it may (the Retry-After)."""
        rate = principal.rate_per_second or self.per_second
        burst = float(principal.burst or self.burst)
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(principal.name, (burst, now))
            tokens = min(burst, tokens + (now - then) * rate)
            if tokens >= 1.0:
                self._buckets[principal.name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[principal.name] = (tokens, now)
            return (1.0 - tokens) / rate
