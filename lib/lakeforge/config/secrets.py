"""Credentials never live in YAML: a value under a key named like a credential (``token``, ``password``, a Spark
setting such as ``spark.hadoop.fs.s3a.secret.key``), a user and password inside a URL, or a credential in a URL's
query (``?token=...``, a JDBC URL's ``password=...``) is refused with the file, the key and where it belongs
instead. Keys ending in ``_env`` name an environment variable and are what lakeforge reads secrets through.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_WORDS = (r"password|passwd|pwd|secret|token|credentials?|api[._-]?key|apikey|private[._-]?key|access[._-]?key"
          r"|secret[._-]?key|account[._-]?key|sas[._-]?token|client[._-]?secret|session[._-]?token")
CREDENTIAL_KEY = re.compile(rf"(?:^|[._-])(?:{_WORDS})(?:$|[._-])", re.IGNORECASE)
_URL_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@:]+:[^/\s@]+@")
_URL_PARAM = re.compile(r"[?&;](?:password|passwd|pwd|token|access_token|id_token|secret|client_secret|key|api_key|"
                        r"apikey|sig|signature|sas|x-amz-signature|x-amz-credential)=[^&;#\s]+", re.IGNORECASE)
_NOT_SECRET = {"", "true", "false", "none", "null"}


def _fix(path: tuple[str, ...]) -> str:
    joined = ".".join(path)
    if path[:2] == ("spark", "conf"):
        return ("Spark settings go on spark-submit's command line, where anyone on the machine can read them: give "
                "cloud credentials through the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                "AZURE_CLIENT_SECRET ...) or, better, an instance profile or cluster role")
    if joined.endswith("webhook_url"):
        return "set monitor.webhook_url_env to the name of an environment variable holding the URL"
    if "jdbc" in path:
        return "keep the URL without it and name the password's environment variable in jdbc.password_env"
    return f"name an environment variable instead (for example {path[-1]}_env: MY_VAR)"


def find_secrets(node: Any, path: tuple[str, ...] = ()) -> list[str]:
    """``key.path: what is wrong; the fix`` for every credential found in the YAML document ``node``."""
    found = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = (*path, str(key))
            named = isinstance(key, str) and not key.endswith("_env") and CREDENTIAL_KEY.search(key)
            if named and not isinstance(value, (Mapping, list)) and str(value).strip().lower() not in _NOT_SECRET:
                found.append(f"{'.'.join(here)}: secrets must not be stored in YAML; {_fix(here)}")
            else:
                found.extend(find_secrets(value, here))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(find_secrets(value, (*path, str(i))))
    elif isinstance(node, str) and (_URL_USERINFO.search(node) or _URL_PARAM.search(node)):
        where = "a user and password inside the URL" if _URL_USERINFO.search(node) else "a credential in the URL"
        found.append(f"{'.'.join(path)}: {where}; secrets must not be stored in YAML; {_fix(path)}")
    return found
