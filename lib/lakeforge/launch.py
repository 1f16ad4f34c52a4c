"""Builds and runs the ``spark-submit`` command for a lakeforge job (what ``./spark-submit.sh`` calls).

    ./spark-submit.sh JOB [launcher options] [job options]

Launcher options (everything else goes to the job, which needs at least --env):
    --master URL          local[*], local-cluster[2,1,1024], spark://host:7077, yarn ...
                          (default: spark.master of conf/<env>.yaml, else local[*])
    --deploy-mode MODE    client (default) or cluster; in cluster mode conf/ travels as an archive
    --conf KEY=VALUE      extra Spark setting, wins over conf/<env>.yaml (repeatable)
    --dry-run             print the exact command instead of running it

The launcher builds the lakeforge wheel once per content of lib/ (shipped with --py-files), resolves
Delta's jars into the project cache (shipped with --jars) unless the environment provides Delta, and
passes the environment's Spark settings as --conf.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Sequence

from lakeforge.config import ConfigError, load_settings
from lakeforge.config.secrets import CREDENTIAL_KEY
from lakeforge.errors import LaunchError
from lakeforge.jars import JarResolutionError, resolve_jars
from lakeforge.spark import ensure_local_event_log_dir, is_local_master, jar_coordinates, job_spark_settings


def _tree_hash(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_wheel(root: Path) -> Path:
    """The lakeforge wheel for the current sources, built once into ``build/dist/<content hash>/``."""
    out = root / "build" / "dist" / _tree_hash(root / "lib", root / "setup.py")
    wheels = sorted(out.glob("lakeforge-*.whl"))
    if wheels:
        return wheels[0]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(root)], capture_output=True, text=True)
    wheels = sorted(out.glob("lakeforge-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise LaunchError(f"building the lakeforge wheel failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return wheels[0]


def conf_archive(root: Path) -> Path:
    """conf/ zipped, for cluster deploy mode where the driver does not see this machine's files."""
    conf = root / "conf"
    target = root / "build" / f"conf-{_tree_hash(conf)}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w") as archive:
            for path in sorted(conf.rglob("*.yaml")):
                archive.write(path, path.relative_to(conf))
        tmp.rename(target)
    return target


def spark_submit_binary() -> str:
    home = os.environ.get("SPARK_HOME")
    if home:
        return str(Path(home) / "bin" / "spark-submit")
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spark-submit.sh", add_help=False, usage="%(prog)s JOB [options] --env ENV [job options]")
    parser.add_argument("job", nargs="?")
    parser.add_argument("--master")
    parser.add_argument("--deploy-mode", choices=("client", "cluster"), default="client")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    return parser


def jobs_in(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "jobs").glob("*.py") if not p.stem.startswith("_"))


def build_command(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The spark-submit argv and the environment to run it with."""
    args, job_args = _parser().parse_known_args(argv)
    root = args.root.resolve()
    if args.job not in jobs_in(root):
        raise LaunchError(f"unknown job {args.job!r}; jobs: {', '.join(jobs_in(root))} (see --help)")
    env_name = _option(job_args, "--env")
    if env_name is None:
        raise LaunchError(f"the {args.job} job needs --env ENV (one of the files in {root / 'conf'})")
    settings = load_settings(env_name, _option(job_args, "--conf-dir") or root / "conf")

    master = args.master or settings.spark.master or "local[*]"
    conf = {**settings.spark.conf, "spark.app.name": f"{settings.spark.app_name}-{args.job}"}
    if settings.spark.python:
        if args.deploy_mode == "client" and not Path(settings.spark.python).is_file():
            raise LaunchError(f"spark.python of environment '{env_name}': {settings.spark.python} does not exist; the "
                              "driver and the executors run it: point it at the project's venv (.venv/bin/python) "
                              "and run 'make setup'")
        conf["spark.pyspark.python"] = settings.spark.python
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep:
            raise LaunchError(f"--conf {item!r}: expected KEY=VALUE")
        if CREDENTIAL_KEY.search(key) and value.strip().lower() not in ("", "true", "false"):
            raise LaunchError(f"--conf {key}=...: looks like a credential, and --conf puts it on spark-submit's command "
                              "line, where anyone on the machine can read it; give it through the environment "
                              "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ...), an instance profile or cluster role")
        conf[key] = value

    cmd = [spark_submit_binary(), "--master", master, "--deploy-mode", args.deploy_mode,
           "--py-files", str(build_wheel(root))]
    coordinates = jar_coordinates(job_spark_settings(settings, args.job, _option(job_args, "--source")))
    if coordinates:
        cmd += ["--jars", resolve_jars(Path(settings.spark.jar_cache), coordinates).classpath]
    ensure_local_event_log_dir(conf)
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    env = dict(os.environ)
    if is_local_master(master):
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log_config = Path(_option(job_args, "--conf-dir") or root / "conf") / "log4j2.properties"
    if args.deploy_mode == "client" and log_config.is_file() and "spark.driver.extraJavaOptions" not in conf:
        cmd += ["--driver-java-options", f"-Dlog4j2.configurationFile={log_config.resolve().as_uri()}"]
    if args.deploy_mode == "cluster":
        cmd += ["--archives", f"{conf_archive(root)}#lakeforge_conf"]
        job_args = [*_without_option(job_args, "--conf-dir"), "--conf-dir", "lakeforge_conf"]
    cmd += [str(root / "jobs" / f"{args.job}.py"), *job_args]
    return cmd, env


def _umask(argv: Sequence[str]) -> int | None:
    """``storage.umask`` of the job's environment (the settings build_command loaded, read again: cheap)."""
    args, job_args = _parser().parse_known_args(argv)
    conf_dir = _option(job_args, "--conf-dir") or args.root.resolve() / "conf"
    return load_settings(_option(job_args, "--env"), conf_dir).storage.umask_bits


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _without_option(args: Sequence[str], name: str) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, _ = _parser().parse_known_args(argv)
    root = args.root.resolve()
    rest = _without_option(argv, "--root")
    if not rest or rest[0] in ("-h", "--help"):
        print(__doc__.strip())
        print(f"\nJobs: {', '.join(jobs_in(root))}   (./spark-submit.sh JOB --help for a job's own options)")
        return 0 if rest else 2
    if "-h" in rest or "--help" in rest:  # the job's own options: no Spark needed to print them
        job_file = root / "jobs" / f"{args.job}.py"
        if not job_file.is_file():
            print(f"spark-submit.sh: error: unknown job {args.job!r}; jobs: {', '.join(jobs_in(root))}", file=sys.stderr)
            return 2
        return subprocess.run([sys.executable, str(job_file), "--help"]).returncode
    try:
        cmd, env = build_command(argv)
        umask = _umask(argv)
    except (LaunchError, ConfigError, JarResolutionError) as exc:
        print(f"spark-submit.sh: error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(" ".join(shlex.quote(part) for part in cmd))
        return 0
    if umask is not None:  # spark-submit's JVM and the job's Python process inherit it
        os.umask(umask)
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
