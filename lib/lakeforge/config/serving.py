"""The ``serve`` section: the online scoring service (``lakeforge serve``).

No anonymous predictions: at least one way to authenticate (API keys by their SHA-256 hashes, or JWTs verified
against a public key or a JWKS file) must be configured. Keys themselves never appear here: clients hold them, and
the service only ever sees and compares their hashes.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from lakeforge.config._base import _Frozen

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ApiKey(_Frozen):
    name: str = Field(description="who holds the key: logged with each refusal and counted in metrics, never the key")
    sha256: str = Field(description="hex SHA-256 of the key (python -m lakeforge.serve.keys to make one)")
    models: tuple[str, ...] = Field(("*",), description="registered model names the key may call; * for any")
    rate_per_second: float | None = Field(None, gt=0, description="this key's rate limit (default serve.rate_limit)")
    burst: int | None = Field(None, ge=1, description="this key's burst (default serve.rate_limit.burst)")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX64.match(value):
            raise ValueError("must be the 64 lowercase hex digits of the key's SHA-256 (never the key itself); make "
                             "one with: python -m lakeforge.serve.keys")
        return value


class JwtSettings(_Frozen):
    public_key_file: str | None = Field(None, description="PEM public key the tokens are signed with")
    jwks_file: str | None = Field(None, description="JWKS file (keys by kid) the tokens are signed with")
    algorithms: tuple[str, ...] = ("RS256",)
    issuer: str | None = None
    audience: str | None = None
    models_claim: str = Field("models", description="claim listing the model names a token may call (a list or a "
                                                    "space-separated string; * for any)")

    @model_validator(mode="after")
    def _one_key_source(self) -> "JwtSettings":
        if (self.public_key_file is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of public_key_file and jwks_file")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError(f"algorithms {list(self.algorithms)}: only public-key algorithms (RS*, PS*, ES*, EdDSA); "
                             "a shared secret would have to sit in the config")
        return self


class RateLimit(_Frozen):
    per_second: float = Field(50.0, gt=0, description="requests a second per key (token bucket refill)")
    burst: int = Field(100, ge=1, description="requests a key may make at once")


class InferenceLogSettings(_Frozen):
    enabled: bool = True
    table: str = Field("inference_log", description="table name (in the monitoring layer) of served requests")
    flush_rows: int = Field(5000, ge=1, description="write when this many rows are buffered ...")
    flush_seconds: float = Field(30.0, gt=0, description="... or this long after the oldest buffered row")
    max_buffer_rows: int = Field(100_000, ge=1, description="rows held while a write is slow; beyond, requests are "
                                                            "still answered and the overflow is counted as dropped")


class ServeSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    model: str | None = Field(None, description="registered model to serve (default model.registered_name)")
    alias: str = "champion"
    max_records: int = Field(100, ge=1, description="records a request may carry")
    max_body_bytes: int = Field(1_048_576, ge=1024)
    poll_seconds: float = Field(10.0, gt=0, description="how often the alias is checked for a new version")
    api_keys: tuple[ApiKey, ...] = ()
    api_keys_file: str | None = Field(None, description="YAML list of api_keys entries (hashes only), read at start")
    jwt: JwtSettings | None = None
    rate_limit: RateLimit = RateLimit()
    inference_log: InferenceLogSettings = InferenceLogSettings()
    max_connections: int = Field(256, ge=1, description="open connections beyond which uvicorn answers 503")

    @model_validator(mode="after")
    def _authenticated(self) -> "ServeSettings":
        names = [k.name for k in self.api_keys]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"api_keys: names {duplicated} are used twice; each key needs its own name")
        return self

    @property
    def authenticates(self) -> bool:
        return bool(self.api_keys or self.api_keys_file or self.jwt)
