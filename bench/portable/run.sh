#!/usr/bin/env bash
# On the GPU machine, in the repository: unpack what bench/portable/build.sh packed, then run the benchmark.
#   bench/portable/run.sh BUNDLE [bench/train_encoded.py options]     (unpacks into $LF, default /tmp/lakeforge-portable)
# Parts already unpacked are kept, so the parts may arrive one call at a time (BUNDLE then holds only the new one).
set -euo pipefail
bundle=$1; shift; L=${LF:-/tmp/lakeforge-portable}; mkdir -p "$L"
for part in "$bundle"/part-*.tar.xz "$bundle"/encoded.tar; do
  [ -e "$part" ] && [ ! -e "$L/.$(basename "$part")" ] || continue
  tar -C "$L" -xf "$part" && touch "$L/.$(basename "$part")" && echo "unpacked $part"
done
for p in part-1.tar.xz part-2.tar.xz part-3.tar.xz encoded.tar; do
  [ -e "$L/.$p" ] || { echo "$p not unpacked in $L yet: run again with the bundle folder holding it"; exit 0; }
done
if [ ! -e "$L/site/pyspark/jars/.complete" ]; then
  LF=$L python3 - <<'PY'
import os, zipfile
tree = os.path.join(os.environ["LF"], "jartree"); out = os.path.join(os.environ["LF"], "site/pyspark/jars")
os.makedirs(out, exist_ok=True)
for jar in sorted(os.listdir(tree)):
    root = os.path.join(tree, jar)
    with zipfile.ZipFile(os.path.join(out, jar), "w", zipfile.ZIP_STORED) as z:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                name = os.path.relpath(os.path.join(folder, f), root)
                if name != "META-INF/INDEX.LIST":  # a jar index fails the class loader once entries move
                    z.write(os.path.join(folder, f), name)
open(os.path.join(out, ".complete"), "w").close()
print(len(os.listdir(out)) - 1, "jars rebuilt in", out)
PY
fi
export JAVA_HOME=$L/jre PATH=$L/jre/bin:$PATH PYTHONPATH=$L/site PYSPARK_PYTHON=$(command -v python3) PYTHONUNBUFFERED=1
unset SPARK_HOME
python3 "$(dirname "$0")/../train_encoded.py" "$L/encoded" "$@"
