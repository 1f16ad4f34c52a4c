#!/usr/bin/env bash
# Pack what bench/train_encoded.py needs for a GPU machine with Python 3.12 but no Java and no network:
#   bench/portable/build.sh OUT        # after `make setup`; writes OUT/part-{1,2,3}.tar.xz and OUT/encoded.tar
# A jlink'd Java 17, pyspark with its jars trimmed to those a traced CPU run loaded (trim_jars.py), xgboost,
# pandas 2 (pyspark 4.2 does not support pandas 3) and the demo's encoded rows. Each part stays under 60 MB, so a
# part can travel alone when a transfer is size-limited. On the GPU machine: bench/portable/run.sh OUT [args].
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(realpath -m "$1"); work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$out" "$work"/p1/site "$work"/p2/jartree "$work"/p3/site "$work"/p3/jartree
[ -d "$out/encoded" ] || PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/python bench/train.py --export-encoded "$out/encoded"
jlink --add-modules java.base,java.compiler,java.desktop,java.instrument,java.logging,java.management,java.naming,\
java.net.http,java.prefs,java.rmi,java.scripting,java.security.jgss,java.security.sasl,java.sql,java.transaction.xa,\
java.xml,jdk.attach,jdk.charsets,jdk.crypto.ec,jdk.incubator.vector,jdk.jdi,jdk.jfr,jdk.localedata,jdk.management,\
jdk.management.jfr,jdk.net,jdk.security.auth,jdk.unsupported,jdk.zipfs \
  --strip-debug --no-man-pages --no-header-files --output "$work/p3/jre"
# Trace which classes a CPU run loads on that JRE with all of Spark's jars.
JAVA_HOME="$work/p3/jre" PATH="$work/p3/jre/bin:$PATH" JAVA_TOOL_OPTIONS="-Xlog:class+load=info:file=$work/classes.log" \
  PYSPARK_PYTHON="$PWD/.venv/bin/python" .venv/bin/python bench/train_encoded.py "$out/encoded" --devices cpu \
  --rows 100000 1000000 --threads 2 --output "$work/trace.json" > "$work/trace.out" 2>&1 \
  || { tail -30 "$work/trace.out"; exit 1; }
.venv/bin/python bench/portable/trim_jars.py "$work/classes.log" "$site/pyspark/jars" "$work/jars"
for jar in "$work"/jars/*.jar; do  # unpacked, so xz compresses across classes (about half the jars' size)
  name=$(basename "$jar"); part=p2; case $name in icu4j-*|breeze_*) part=p3;; esac
  mkdir -p "$work/$part/jartree/$name"; (cd "$work/$part/jartree/$name" && unzip -q "$jar")
done
cp -r "$site"/{xgboost,xgboost-*.dist-info,py4j} "$work/p1/site/"
(cd "$site" && tar -cf - --exclude pyspark/jars --exclude pyspark/work --exclude pyspark/examples pyspark) | tar -C "$work/p1/site" -xf -
cp -r "$site"/{pandas,pandas-*.dist-info,pytz,tzdata} "$work/p3/site/"
find "$work" -name __pycache__ -prune -exec rm -rf {} +
for p in 1 2 3; do tar -C "$work/p$p" -cf - . | xz -T0 -6 > "$out/part-$p.tar.xz"; done
(cd "$out" && tar -cf encoded.tar encoded)
ls -l "$out"
