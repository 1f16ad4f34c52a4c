"""Copy Spark's jars trimmed to what a traced run loaded, for a GPU machine that has no Java and no network.

    python bench/portable/trim_jars.py CLASS_LOAD_LOG SPARK_JARS_DIR OUT_DIR

CLASS_LOAD_LOG is the JVM's ``-Xlog:class+load=info:file=...`` of a run of ``bench/train_encoded.py`` on the
same JRE. Jars no class was loaded from are left out. Spark's own jars, Scala's, Netty's, Arrow's, Parquet's and
every jar under 4 MiB are copied whole (they choose classes at run time: transports, allocators, codecs); the
other large jars keep the packages a class was loaded from, plus all their resources. A jar index
(META-INF/INDEX.LIST) is dropped from a trimmed jar: it would list classes that are gone.
"""

from __future__ import annotations

import collections
import re
import shutil
import sys
import zipfile
from pathlib import Path

WHOLE_PREFIXES = ("spark-", "netty", "scala-", "arrow", "parquet")
WHOLE_BELOW_BYTES = 4 * 2**20


def loaded_packages(log: Path) -> dict[str, set[str]]:
    """Jar file name -> the packages (slash-separated) classes were loaded from."""
    packages: dict[str, set[str]] = collections.defaultdict(set)
    for line in log.read_text().splitlines():
        match = re.search(r"\] (\S+) source: (?:jar:)?file:(\S+\.jar)", line)
        if match:
            packages[Path(match.group(2)).name].add(match.group(1).replace(".", "/").rpartition("/")[0])
    return packages


def trim(log: Path, jars: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for jar, packages in sorted(loaded_packages(log).items()):
        source = jars / jar
        if not source.exists():
            continue
        target = out / jar
        if source.stat().st_size < WHOLE_BELOW_BYTES or jar.startswith(WHOLE_PREFIXES):
            shutil.copy(source, target)
        else:
            with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
                for info in zin.infolist():
                    name = info.filename
                    package = re.sub(r"^META-INF/versions/[0-9]+/", "", name).rpartition("/")[0]
                    if name == "META-INF/INDEX.LIST" or (name.endswith(".class") and package not in packages):
                        continue
                    zout.writestr(info, zin.read(name))
        total += target.stat().st_size
    return total


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    size = trim(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    print(f"{sys.argv[3]}: {size / 2**20:.1f} MiB of jars")
