"""Resolve Delta Lake's jars from Maven Central once, into a cache inside the project, and reuse them.

Spark's own Ivy resolution (``spark-submit --packages``) is tried first, into a cache folder of its own;
if Ivy cannot reach the repository, the same artifacts are fetched with Maven
(``dependency:copy-dependencies``). Either way a manifest records the coordinates and the jar
files, so later sessions pass ``spark.jars`` (or ``--jars``) and resolve nothing. Each set of coordinates has a
manifest of its own (``manifest-<key>.json``), so venvs of different Spark lines share one cache.

Run ``python -m lakeforge.jars --cache-dir .cache/jars`` to resolve and print the jar list.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lakeforge.errors import JarResolutionError

LEGACY_MANIFEST = "manifest.json"  # the single manifest of earlier caches: still read, never written


@dataclass(frozen=True)
class ResolvedJars:
    coordinates: tuple[str, ...]
    jars: tuple[Path, ...]
    method: str

    @property
    def classpath(self) -> str:
        """Comma-separated list of ``spark_jars``, the form ``spark.jars`` and ``--jars`` take."""
        return ",".join(str(j) for j in self.spark_jars)

    @property
    def spark_jars(self) -> tuple[Path, ...]:
        """The jars to add to Spark: those of an artifact Spark does not ship itself."""
        return without_spark_jars(self.jars)


def scala_binary_version() -> str:
    """Scala binary version of the installed pyspark (2.12 for the 3.5 wheels, 2.13 for 4.x), read from its
    ``scala-library`` jar."""
    import pyspark

    for jar in (Path(pyspark.__file__).parent / "jars").glob("scala-library-*.jar"):
        return ".".join(jar.stem.removeprefix("scala-library-").split(".")[:2])
    return "2.13" if int(pyspark.__version__.split(".")[0]) >= 4 else "2.12"


def delta_artifact(delta_version: str, spark_version: str, scala: str) -> str:
    """Delta's artifact id: ``delta-spark_<scala>`` up to Delta 4.0, ``delta-spark_<spark minor>_<scala>`` from 4.1."""
    major, minor = (int(p) for p in delta_version.split(".")[:2])
    if (major, minor) >= (4, 1):
        return f"delta-spark_{'.'.join(spark_version.split('.')[:2])}_{scala}"
    return f"delta-spark_{scala}"


def delta_coordinates() -> tuple[str, ...]:
    """Maven coordinates of the Delta jar matching the installed ``delta-spark`` and ``pyspark`` wheels (its
    ``delta-storage`` dependency comes with it)."""
    import pyspark

    delta_version = importlib.metadata.version("delta-spark")
    artifact = delta_artifact(delta_version, pyspark.__version__, scala_binary_version())
    return (f"io.delta:{artifact}:{delta_version}",)


def kafka_connector_coordinates() -> tuple[str, ...]:
    """Spark's Structured Streaming Kafka connector built for the installed pyspark (its Kafka client comes with it)."""
    import pyspark

    return (f"org.apache.spark:spark-sql-kafka-0-10_{scala_binary_version()}:{pyspark.__version__}",)


def _artifact(jar: Path) -> str:
    """``hadoop-client-api`` from ``hadoop-client-api-3.5.0.jar`` or Ivy's ``org.apache.hadoop_hadoop-client-api-3.5.0.jar``."""
    stem = jar.name.removesuffix(".jar")
    if "_" in stem and not stem.split("_", 1)[1][:1].isdigit():  # Ivy's <organisation>_<artifact>-<version>
        stem = stem.split("_", 1)[1]  # (after a Scala suffix's "_" comes a digit: spark-core_2.13-4.2.0)
    parts = stem.split("-")
    while len(parts) > 1 and parts[-1][:1].isdigit():
        parts.pop()
    return "-".join(parts)


def without_spark_jars(jars: Sequence[Path]) -> tuple[Path, ...]:
    """``jars`` less those whose artifact Spark ships already (Hadoop's client, lz4, snappy, slf4j ... that a
    connector's dependencies name): a second copy on the class path at another version only risks conflicts."""
    import pyspark

    shipped = {_artifact(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return tuple(j for j in jars if _artifact(j) not in shipped)


def _key(coordinates: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(coordinates).encode()).hexdigest()[:12]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def manifest_path(cache_dir: Path, coordinates: Sequence[str]) -> Path:
    return cache_dir / f"manifest-{_key(coordinates)}.json"


def _read_manifest(cache_dir: Path, coordinates: tuple[str, ...]) -> ResolvedJars | None:
    for path in (manifest_path(cache_dir, coordinates), cache_dir / LEGACY_MANIFEST):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        jars = tuple(cache_dir / j for j in data.get("jars", ()))
        if tuple(data.get("coordinates", ())) == coordinates and jars and all(j.is_file() for j in jars):
            return ResolvedJars(coordinates, jars, data.get("method", "unknown"))
    return None


def _write_manifest(cache_dir: Path, resolved: ResolvedJars) -> None:
    payload = {
        "coordinates": list(resolved.coordinates),
        "jars": [str(j.relative_to(cache_dir)) for j in resolved.jars],
        "method": resolved.method,
    }
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".manifest-")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.replace(tmp, manifest_path(cache_dir, resolved.coordinates))


def _resolve_with_ivy(workdir: Path, coordinates: tuple[str, ...]) -> list[Path]:
    """Let spark-submit's Ivy resolve the packages into ``workdir`` by launching a no-op application."""
    import pyspark

    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    workdir.mkdir(parents=True, exist_ok=True)
    noop = workdir / "noop.py"
    noop.write_text("pass\n")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP=os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
    cmd = [
        str(spark_submit), "--master", "local[1]",
        "--packages", ",".join(coordinates),
        "--conf", f"spark.jars.ivy={workdir}",
        str(noop),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    jars = sorted((workdir / "jars").glob("*.jar"))
    if proc.returncode != 0 or not jars:
        raise JarResolutionError(f"Ivy (spark-submit --packages) failed with exit code {proc.returncode}:\n"
                                 f"{_tail(proc.stdout + proc.stderr)}")
    return jars


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakeforge</groupId><artifactId>jar-resolver</artifactId><version>1</version>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _resolve_with_maven(workdir: Path, coordinates: tuple[str, ...]) -> list[Path]:
    """Fetch the same artifacts with Maven; Spark and Scala themselves are excluded (Spark ships them)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarResolutionError("Maven fallback needs `mvn` on PATH (Debian: apt-get install maven)")
    deps = []
    for coord in coordinates:
        group, artifact, version = coord.split(":")
        deps.append(f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                    f"<version>{version}</version></dependency>")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pom.xml").write_text(_POM.format(deps="\n".join(deps)))
    out = workdir / "jars"
    cmd = [
        mvn, "-q", "-B", "-f", str(workdir / "pom.xml"),
        f"-Dmaven.repo.local={workdir.parent / 'm2'}",
        "dependency:copy-dependencies", f"-DoutputDirectory={out}",
        "-DincludeScope=runtime", "-DexcludeGroupIds=org.apache.spark,org.scala-lang",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    jars = sorted(out.glob("*.jar"))
    if proc.returncode != 0 or not jars:
        raise JarResolutionError(f"Maven failed with exit code {proc.returncode}:\n{_tail(proc.stdout + proc.stderr)}")
    return jars


def resolve_jars(
    cache_dir: Path,
    coordinates: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = ("ivy", "maven"),
) -> ResolvedJars:
    """Return the cached jars for ``coordinates`` (Delta's by default), resolving them on first use."""
    coords = tuple(coordinates) if coordinates is not None else delta_coordinates()
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = _read_manifest(cache_dir, coords)
    if cached is not None:
        return cached
    # Two jobs (or test workers) started at once resolve one set once: the second waits, then reads the manifest.
    with open(cache_dir / f".lock-{_key(coords)}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_manifest(cache_dir, coords)
        return cached if cached is not None else _resolve(cache_dir, coords, methods)


def _resolve(cache_dir: Path, coords: tuple[str, ...], methods: Sequence[str]) -> ResolvedJars:
    resolvers = {"ivy": _resolve_with_ivy, "maven": _resolve_with_maven}
    errors = []
    for method in methods:
        workdir = cache_dir / method / _key(coords)
        try:
            jars = resolvers[method](workdir, coords)
        except (JarResolutionError, subprocess.TimeoutExpired) as exc:
            errors.append(f"[{method}] {exc}")
            continue
        resolved = ResolvedJars(coords, tuple(jars), method)
        _write_manifest(cache_dir, resolved)
        return resolved
    raise JarResolutionError(
        f"Could not resolve {', '.join(coords)} into {cache_dir}. Check that Maven Central is reachable "
        f"(proxy settings), or copy the jars into {cache_dir} by hand.\n" + "\n".join(errors)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakeforge.jars", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/jars"))
    parser.add_argument("--package", action="append", default=[], metavar="GROUP:ARTIFACT:VERSION",
                        help="extra Maven coordinates to resolve with Delta's (repeatable)")
    parser.add_argument("--env", help="also resolve spark.packages of conf/<env>.yaml")
    parser.add_argument("--conf-dir", type=Path, default=Path("conf"))
    parser.add_argument("--method", action="append", choices=("ivy", "maven"),
                        help="resolution method(s) to try, in order (default: ivy then maven)")
    args = parser.parse_args(argv)
    packages = tuple(args.package)
    if args.env:
        from lakeforge.config import load_settings

        packages += load_settings(args.env, args.conf_dir).spark.packages
    try:
        resolved = resolve_jars(args.cache_dir, delta_coordinates() + packages,
                                methods=tuple(args.method or ("ivy", "maven")))
    except JarResolutionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(resolved.classpath)
    return 0


if __name__ == "__main__":
    sys.exit(main())
