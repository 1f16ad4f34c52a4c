"""Make an API key for ``lakeforge serve``: the key goes to the client (print or --key-file, mode 600), only its
SHA-256 goes into the configuration (``serve.api_keys``) or the keys file (``serve.api_keys_file``).

    python -m lakeforge.serve.keys NAME [--models m1,m2] [--file conf/serve_keys.yaml] [--key-file PATH]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

import yaml

from lakeforge.serve.auth import key_hash


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakeforge.serve.keys", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="who holds the key (logged and counted, never the key)")
    parser.add_argument("--models", default="*", help="comma-separated model names the key may call (default: *)")
    parser.add_argument("--file", type=Path, help="append the entry to this YAML keys file (serve.api_keys_file)")
    parser.add_argument("--key-file", type=Path, help="write the key here (mode 600) instead of printing it")
    args = parser.parse_args(argv)
    key = "lf_" + secrets.token_urlsafe(32)
    entry = {"name": args.name, "sha256": key_hash(key), "models": [m for m in args.models.split(",") if m]}
    if args.file:
        entries = (yaml.safe_load(args.file.read_text()) or []) if args.file.exists() else []
        if any(e.get("name") == args.name for e in entries):
            print(f"error: {args.file} already has a key named {args.name!r}", file=sys.stderr)
            return 2
        args.file.parent.mkdir(parents=True, exist_ok=True)
        args.file.write_text(yaml.safe_dump([*entries, entry], sort_keys=False))
    else:
        print(yaml.safe_dump({"api_keys": [entry]}, sort_keys=False), end="", file=sys.stderr)
    if args.key_file:
        args.key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(args.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
    else:
        print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
