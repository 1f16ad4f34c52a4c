"""Print the commands that put lakeforge on EMR: build and upload the artifacts, create the cluster, add the steps.

    .venv/bin/python conf/emr/print_commands.py                # review, then run them with your AWS credentials
    .venv/bin/python conf/emr/print_commands.py --write-steps  # regenerate steps.json after conf/emr.yaml changes

Nothing here calls AWS. The cluster comes from conf/emr/cluster.yaml (the RunJobFlow request), the steps from
conf/emr/steps.json: one `spark-submit` per job, the command `./spark-submit.sh JOB --env emr --master yarn
--deploy-mode cluster` builds (lakeforge.launch), with the local wheel, jars, conf archive and job file replaced
by their S3 copies under the folder of the bootstrap script. The cluster runs the Spark 3.5 line: EMR's own Spark
and Delta (RELEASES), the wheel's dependencies pinned by constraints-spark35.txt.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path, PurePosixPath

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLUSTER_FILE, STEPS_FILE = HERE / "cluster.yaml", HERE / "steps.json"
ENV = "emr"
# The scheduled chain, in order, with each job's arguments (as in databricks.yml).
JOBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ingest", ("--all",)),
    ("train", ("--promote", "never")),
    ("gate", ("--alias", "challenger")),
    ("score", ("--alias", "champion")),
    ("monitor", ("--alias", "champion")),
)
WHEEL_DIR = "build/emr"  # where the Spark-less wheel for the cluster is built
CONF_ARCHIVE = "conf.zip"
CONSTRAINTS = "constraints-spark35.txt"  # the pins of lakeforge's Spark 3.5 line, which EMR 7.x runs

# What each EMR release ships, from the Amazon EMR Release Guide (Spark release history, Delta release history and
# the release's page; checked 2026-12): the cluster's Spark and Delta must be the line of the pins it installs.
RELEASES: dict[str, dict[str, str]] = {
    "emr-7.13.0": {"spark": "3.5.6-amzn-2", "delta": "3.3.2-amzn-2", "scala": "2.12.18", "python": "3.9, 3.11"},
    "emr-spark-8.0.0": {"spark": "4.0.2-amzn-0", "delta": "4.0.0-amzn-1-spark"},  # Spark 4: no lakeforge line yet
}
# Jars the release puts on Spark's classpath itself (Spark release history: "components installed with Spark";
# /usr/share/aws/delta/lib with delta.enabled): a step must never ship another copy of these.
SHIPPED_JARS = ("delta-spark", "delta-storage", "delta-core", "hadoop-", "jackson-", "spark-", "scala-", "aws-java-sdk",
                "bundle-2.", "emrfs", "hudi", "iceberg", "parquet-", "log4j", "slf4j")


def load_cluster(path: Path = CLUSTER_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def load_steps(path: Path = STEPS_FILE) -> list[dict]:
    return json.loads(path.read_text())


def artifact_prefix(cluster: dict) -> str:
    """The S3 folder of every artifact: the folder of the bootstrap script."""
    path = cluster["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"]
    return path.rsplit("/", 1)[0]


def wheel_name() -> str:
    import lakeforge

    return f"lakeforge-{lakeforge.__version__}-py3-none-any.whl"


def step_for(job: str, job_args: tuple[str, ...], prefix: str) -> dict:
    """The EMR step for ``job``: launch.build_command's spark-submit, its local paths swapped for S3 ones."""
    from lakeforge.launch import build_command

    cmd, _ = build_command([job, "--env", ENV, "--master", "yarn", "--deploy-mode", "cluster", "--root", str(ROOT),
                            *job_args])
    args = ["spark-submit"]
    rest = iter(cmd[1:])
    for arg in rest:
        if arg == "--py-files":
            args += [arg, f"{prefix}/{Path(next(rest)).name}"]
        elif arg == "--jars":  # only the environment's spark.packages (a JDBC driver): EMR has everything else
            args += [arg, ",".join(f"{prefix}/jars/{PurePosixPath(jar).name}" for jar in next(rest).split(","))]
        elif arg == "--archives":
            alias = next(rest).rsplit("#", 1)[1]
            args += [arg, f"{prefix}/{CONF_ARCHIVE}#{alias}"]
        elif arg == str(ROOT / "jobs" / f"{job}.py"):
            args.append(f"{prefix}/jobs/{job}.py")
        else:
            args.append(arg)
    return {"Type": "CUSTOM_JAR", "Name": f"lakeforge-{job}", "ActionOnFailure": "CANCEL_AND_WAIT",
            "Jar": "command-runner.jar", "Args": args}


def steps_from_launcher(cluster: dict) -> list[dict]:
    prefix = artifact_prefix(cluster)
    return [step_for(job, args, prefix) for job, args in JOBS]


def _json(value) -> str:
    return shlex.quote(json.dumps(value, separators=(",", ":")))


def create_cluster_command(cluster: dict) -> str:
    """`aws emr create-cluster` with the same settings as the RunJobFlow request in cluster.yaml."""
    instances = cluster["Instances"]
    ec2 = {"InstanceProfile": cluster["JobFlowRole"], "SubnetIds": instances["Ec2SubnetIds"]}
    bootstrap = [{"Name": b["Name"], "Path": b["ScriptBootstrapAction"]["Path"],
                  "Args": b["ScriptBootstrapAction"].get("Args", [])} for b in cluster["BootstrapActions"]]
    parts = [
        "aws emr create-cluster",
        f"--name {shlex.quote(cluster['Name'])}",
        f"--release-label {cluster['ReleaseLabel']}",
        "--applications " + " ".join(f"Name={a['Name']}" for a in cluster["Applications"]),
        f"--log-uri {cluster['LogUri']}",
        f"--service-role {cluster['ServiceRole']}",
        f"--ec2-attributes {_json(ec2)}",
        f"--instance-fleets {_json(instances['InstanceFleets'])}",
        f"--bootstrap-actions {_json(bootstrap)}",
        f"--configurations {_json(cluster['Configurations'])}",
        f"--step-concurrency-level {cluster['StepConcurrencyLevel']}",
        f"--auto-termination-policy IdleTimeout={cluster['AutoTerminationPolicy']['IdleTimeout']}",
        "--tags " + " ".join(shlex.quote(f"{t['Key']}={t['Value']}") for t in cluster["Tags"]),
        "--query ClusterId --output text",
    ]
    if instances.get("TerminationProtected"):
        parts.insert(-1, "--termination-protected")
    return " \\\n    ".join(parts)


def commands(cluster: dict, steps: list[dict]) -> list[str]:
    """Every command, in the order to run them."""
    from lakeforge.config import load_settings
    from lakeforge.jars import resolve_jars
    from lakeforge.launch import conf_archive
    from lakeforge.spark import jar_coordinates

    prefix = artifact_prefix(cluster)
    spark = load_settings(ENV, ROOT / "conf").spark
    coordinates = jar_coordinates(spark)  # spark.packages only: Delta is EMR's (delta_jars: provided)
    jars = resolve_jars(Path(spark.jar_cache), coordinates).jars if coordinates else ()
    archive = conf_archive(ROOT)
    out = [
        "# 1. the wheel without pyspark/delta-spark (EMR ships Spark), then every artifact to " + prefix,
        f"LAKEFORGE_SPARK_PROVIDED=1 .venv/bin/python -m pip wheel --no-deps --no-build-isolation -w {WHEEL_DIR} .",
        f"aws s3 cp {WHEEL_DIR}/{wheel_name()} {prefix}/{wheel_name()}",
        f"aws s3 cp {CONSTRAINTS} {prefix}/{CONSTRAINTS}",
        f"aws s3 cp conf/emr/bootstrap.sh {cluster['BootstrapActions'][0]['ScriptBootstrapAction']['Path']}",
        f"aws s3 cp {archive.relative_to(ROOT)} {prefix}/{CONF_ARCHIVE}",
        *(f"aws s3 cp jobs/{job}.py {prefix}/jobs/{job}.py" for job, _ in JOBS),
        *(f"aws s3 cp {jar} {prefix}/jars/{PurePosixPath(str(jar)).name}" for jar in jars),
        "",
        "# 2. the cluster (prints its id)",
        f"CLUSTER_ID=$({create_cluster_command(cluster)})",
        "",
        "# 3. the steps, in order (a failed step cancels the ones after it: ActionOnFailure CANCEL_AND_WAIT). A step",
        "#    fails on any exit code but 0 (README: 1 unexpected, 2 input or configuration, 3 monitoring alert,",
        "#    5 data quality; the gate step runs without --require-promotion, so a refused challenger exits 0)",
        *(f"aws emr add-steps --cluster-id \"$CLUSTER_ID\" --steps {_json([step])}" for step in steps),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-steps", action="store_true",
                        help=f"regenerate {STEPS_FILE.relative_to(ROOT)} from lakeforge.launch and conf/{ENV}.yaml")
    args = parser.parse_args(argv)
    cluster = load_cluster()
    if args.write_steps:
        STEPS_FILE.write_text(json.dumps(steps_from_launcher(cluster), indent=2) + "\n")
        print(f"wrote {STEPS_FILE.relative_to(ROOT)}")
        return 0
    print("\n".join(commands(cluster, load_steps())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
