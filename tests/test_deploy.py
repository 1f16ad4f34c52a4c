"""Deployment definitions, checked without the clouds: the Databricks Asset Bundle (databricks.yml, resources/)
resolved per target the way `databricks bundle validate` merges it, and the EMR cluster, bootstrap and steps
(conf/emr/). Every task and step must name a job that exists, with arguments its own parser accepts; runtimes must
carry the Spark and Delta of a line lakeforge pins; storage is Unity Catalog on Databricks and nothing is in DBFS."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import re
import shlex
import subprocess
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

import lakeforge
from lakeforge import commands
from lakeforge.config import ConfigError, load_settings
from tests.conftest import ROOT

TARGETS = ("dev", "staging", "prod", "gpu")
CHAIN = {"ingest": [], "train": ["ingest"], "gate": ["train"], "score": ["gate"], "monitor": ["score"]}
TASK_CLUSTER = {"ingest": "ingest_cluster", "train": "train_cluster", "gate": "train_cluster",
                "score": "score_cluster", "monitor": "score_cluster"}
TASK_ARGS = {"ingest": ["--all"], "train": ["--promote", "never"], "gate": ["--alias", "challenger"],
             "score": ["--alias", "champion"], "monitor": ["--alias", "champion"]}
TARGET_ENV = {"dev": "databricks_dev", "staging": "databricks_staging", "prod": "databricks", "gpu": "databricks_gpu"}
VCPUS = {"r5d.2xlarge": 8, "g5.4xlarge": 16}  # of the training clusters' node types

# Field names of the Jobs API objects (JobSettings, Task, PythonWheelTask, ClusterSpec, AwsAttributes) as the
# databricks-sdk 0.162.0 models generated from the API spec have them; "permissions" is the bundle's own key.
JOB_KEYS = {"budget_policy_id", "continuous", "deployment", "description", "edit_mode", "email_notifications",
            "environments", "format", "git_source", "health", "job_clusters", "max_concurrent_runs", "name",
            "notification_settings", "parameters", "queue", "run_as", "schedule", "tags", "tasks", "timeout_seconds",
            "trigger", "webhook_notifications", "permissions"}
TASK_KEYS = {"task_key", "description", "depends_on", "run_if", "job_cluster_key", "existing_cluster_id", "new_cluster",
             "environment_key", "libraries", "python_wheel_task", "spark_python_task", "notebook_task",
             "spark_jar_task", "spark_submit_task", "max_retries", "min_retry_interval_millis", "retry_on_timeout",
             "timeout_seconds", "email_notifications", "notification_settings", "webhook_notifications", "health",
             "disabled"}
WHEEL_TASK_KEYS = {"package_name", "entry_point", "parameters", "named_parameters"}
CLUSTER_KEYS = {"spark_version", "node_type_id", "driver_node_type_id", "num_workers", "autoscale", "aws_attributes",
                "spark_conf", "spark_env_vars", "data_security_mode", "single_user_name", "kind", "use_ml_runtime",
                "is_single_node", "custom_tags", "policy_id", "apply_policy_default_values", "runtime_engine",
                "init_scripts", "enable_elastic_disk", "enable_local_disk_encryption", "instance_pool_id",
                "driver_instance_pool_id", "cluster_log_conf", "docker_image", "workload_type"}
AWS_ATTRIBUTE_KEYS = {"first_on_demand", "availability", "zone_id", "spot_bid_price_percent", "instance_profile_arn",
                      "ebs_volume_type", "ebs_volume_count", "ebs_volume_size", "ebs_volume_iops",
                      "ebs_volume_throughput"}
# Access modes for Unity Catalog; DATA_SECURITY_MODE_* need kind: CLASSIC_PREVIEW, the legacy names do not.
UC_ACCESS_MODES = {"SINGLE_USER", "USER_ISOLATION", "DATA_SECURITY_MODE_DEDICATED", "DATA_SECURITY_MODE_STANDARD"}
# Databricks Runtime -> Apache Spark (Databricks Runtime release notes, versions and compatibility, 2026-12).
RUNTIME_SPARK = {"16.4": "3.5.2", "17.3": "4.0.0", "18.0": "4.1.0", "19.0": "4.2.0"}
SPARK_VERSION_KEY = re.compile(r"(\d+\.\d+)\.x-(?:(cpu|gpu)-ml-)?scala(2\.1[23])")
DEPLOYMENT_FILES = ["databricks.yml", "resources/*.yml", "conf/databricks*.yaml", "conf/emr.yaml", "conf/emr/*"]


# --- helpers ---------------------------------------------------------------------------------------------------

def _pin(constraints: str, package: str) -> str:
    return re.search(rf"^{package}==(\S+)$", (ROOT / constraints).read_text(), re.MULTILINE)[1]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _merge(base, over):
    """Target overrides as the bundle joins them: mappings key by key, job_clusters and tasks by their key."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in over.items()}}
    if isinstance(base, list) and isinstance(over, list) and base and isinstance(base[0], dict):
        id_key = next((k for k in ("job_cluster_key", "task_key") if k in base[0]), None)
        if id_key:
            by_key = {item[id_key]: item for item in base}
            for item in over:
                by_key[item[id_key]] = _merge(by_key[item[id_key]], item) if item[id_key] in by_key else item
            return list(by_key.values())
    return over


def _bundle() -> dict:
    doc = yaml.safe_load((ROOT / "databricks.yml").read_text())
    resources: dict = {}
    for pattern in doc.get("include", []):
        files = sorted(ROOT.glob(pattern))
        assert files, f"include {pattern} matches no file"
        for path in files:
            resources = _merge(resources, yaml.safe_load(path.read_text())["resources"])
    doc["resources"] = resources
    return doc


def _substitute(node, values: dict[str, str]):
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str):
        def repl(match):
            assert match[1] in values, f"${{{match[1]}}} is not defined"
            return values[match[1]]
        return re.sub(r"\$\{([A-Za-z0-9_.]+)\}", repl, node)
    return node


def resolved_job(target: str, file_path: str = "/Workspace/lakeforge/files", **overrides: str) -> dict:
    bundle = _bundle()
    settings = bundle["targets"][target]
    resources = _merge(bundle["resources"], settings.get("resources", {}))
    variables = {name: spec["default"] for name, spec in bundle["variables"].items()}
    variables.update(settings.get("variables", {}), **overrides)
    values = {f"var.{k}": str(v) for k, v in variables.items()}
    values.update({"bundle.target": target, "bundle.name": bundle["bundle"]["name"], "workspace.file_path": file_path})
    return _substitute(resources["jobs"]["lakeforge_pipeline"], values)


def parse_job_args(job: str, argv: list[str]):
    """The job's own parser (lakeforge.commands.<job>) applied to ``argv``; the job itself never runs."""
    return commands.job_module(job).parser().parse_args(argv)


def _emr():
    spec = importlib.util.spec_from_file_location("_lakeforge_emr_commands", ROOT / "conf" / "emr" / "print_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Databricks ---------------------------------------------------------------------------------------------------

def test_bundle_has_the_four_targets_and_builds_the_wheel():
    bundle = _bundle()
    assert bundle["bundle"]["name"] == "lakeforge"
    assert sorted(bundle["targets"]) == sorted(TARGETS)
    assert bundle["targets"]["dev"]["mode"] == "development" and bundle["targets"]["dev"]["default"] is True
    assert [t for t, s in bundle["targets"].items() if s.get("default")] == ["dev"]
    assert bundle["targets"]["prod"]["mode"] == "production"
    assert {t: s["variables"]["lakeforge_env"] for t, s in bundle["targets"].items()} == TARGET_ENV
    wheel = bundle["artifacts"]["lakeforge_wheel"]
    assert wheel["type"] == "whl" and (ROOT / wheel["path"] / "setup.py").is_file()
    assert wheel["build"] == ("LAKEFORGE_SPARK_PROVIDED=1 python -m pip wheel --no-deps --no-build-isolation "
                              "-w dist .")
    assert list(bundle["resources"]["jobs"]) == ["lakeforge_pipeline"]


@pytest.mark.parametrize("target", TARGETS)
def test_tasks_form_the_chain_of_wheel_tasks_on_their_clusters(target):
    job = resolved_job(target)
    assert set(job) <= JOB_KEYS
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == list(CHAIN)
    assert {k: [d["task_key"] for d in t.get("depends_on", [])] for k, t in tasks.items()} == CHAIN
    assert {k: t["job_cluster_key"] for k, t in tasks.items()} == TASK_CLUSTER
    assert {c["job_cluster_key"] for c in job["job_clusters"]} == set(TASK_CLUSTER.values())
    for key, task in tasks.items():
        assert set(task) <= TASK_KEYS and "spark_python_task" not in task, key
        assert set(task["python_wheel_task"]) <= WHEEL_TASK_KEYS, key
        assert task["libraries"] == [{"whl": "../dist/*.whl"}], key
    assert (ROOT / "resources" / "../dist").resolve() == ROOT / "dist"


@pytest.mark.parametrize("target", TARGETS)
def test_each_task_calls_the_console_script_with_arguments_its_job_accepts(target):
    job = resolved_job(target, file_path=str(ROOT))
    entry_point = 'entry_points={"console_scripts": ["lakeforge = lakeforge.commands:run"]}'
    assert entry_point in (ROOT / "setup.py").read_text()
    for task in job["tasks"]:
        name, wheel_task = task["task_key"], task["python_wheel_task"]
        assert (wheel_task["package_name"], wheel_task["entry_point"]) == ("lakeforge", "lakeforge")
        job_name, *params = wheel_task["parameters"]
        assert job_name == name and name in commands.JOBS
        assert params == ["--env", TARGET_ENV[target], "--conf-dir", f"{ROOT}/conf", *TASK_ARGS[name]]
        args = parse_job_args(name, params)
        assert (args.env, Path(args.conf_dir)) == (TARGET_ENV[target], ROOT / "conf")
        assert (ROOT / "conf" / f"{args.env}.yaml").is_file()
        if name == "ingest":
            assert args.all is True and args.source is None
        elif name == "train":
            assert args.promote == "never" and args.force is False
        elif name == "gate":
            assert (args.alias, args.version, args.promote) == ("challenger", None, "gate")
        else:
            assert (args.alias, args.version) == ("champion", None)
    with pytest.raises(SystemExit) as exit_:  # an argument the job does not know is refused
        parse_job_args("gate", ["--env", "databricks", "--alais", "challenger"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("target", TARGETS)
def test_clusters_dedicated_access_spot_workers_on_demand_driver_and_sizes(target):
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in resolved_job(target)["job_clusters"]}
    for key, cluster in clusters.items():
        assert set(cluster) <= CLUSTER_KEYS, key
        assert set(cluster["aws_attributes"]) <= AWS_ATTRIBUTE_KEYS, key
        assert cluster["aws_attributes"]["first_on_demand"] == 1, key
        assert cluster["aws_attributes"]["availability"] == "SPOT_WITH_FALLBACK", key
        # Databricks Runtime ML, xgboost.spark's barrier stages and sparkContext need dedicated (single user) access
        assert cluster["data_security_mode"] in UC_ACCESS_MODES and cluster["data_security_mode"] in (
            "SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"), key
        if cluster["data_security_mode"].startswith("DATA_SECURITY_MODE_"):
            assert cluster.get("kind") == "CLASSIC_PREVIEW", key
    for key in ("ingest_cluster", "score_cluster"):
        assert "num_workers" not in clusters[key]
        scale = clusters[key]["autoscale"]
        assert set(scale) == {"min_workers", "max_workers"} and 1 <= scale["min_workers"] < scale["max_workers"]
    train = clusters["train_cluster"]
    assert "autoscale" not in train and isinstance(train["num_workers"], int)
    assert train["spark_conf"]["spark.dynamicAllocation.enabled"] == "false"
    assert re.fullmatch(r"\d+g", train["spark_conf"]["spark.executor.memoryOverhead"])
    model = load_settings(TARGET_ENV[target], ROOT / "conf").model
    slots = train["num_workers"] * VCPUS[train["node_type_id"]] // int(train["spark_conf"]["spark.task.cpus"])
    if target == "gpu":
        assert (train["node_type_id"], train["spark_version"]) == ("g5.4xlarge", "19.0.x-gpu-ml-scala2.13")
        assert train["spark_conf"]["spark.task.resource.gpu.amount"] == "1"
        assert model.device == "cuda" and model.num_workers == train["num_workers"] == 4
    else:
        assert (train["node_type_id"], train["spark_version"]) == ("r5d.2xlarge", "19.0.x-cpu-ml-scala2.13")
        assert not any("gpu" in k for k in train["spark_conf"])
        assert model.device == "cpu" and model.num_workers == slots == 8
    assert clusters["ingest_cluster"]["spark_env_vars"] == {"LAKEFORGE_PII_KEY": "{{secrets/lakeforge/pii_key}}"}


def _runtime_spark(spark_version: str) -> str:
    match = SPARK_VERSION_KEY.fullmatch(spark_version)
    assert match, f"{spark_version}: not a Databricks Runtime version key"
    spark = RUNTIME_SPARK[match[1]]
    assert match[3] == ("2.12" if spark.startswith("3.") else "2.13"), spark_version  # Spark 4 is Scala 2.13 only
    return spark


@pytest.mark.parametrize("target", TARGETS)
def test_every_runtime_carries_the_spark_of_constraints_txt(target):
    for cluster in (c["new_cluster"] for c in resolved_job(target)["job_clusters"]):
        assert _minor(_runtime_spark(cluster["spark_version"])) == _minor(_pin("constraints.txt", "pyspark"))


def test_the_documented_spark35_runtimes_carry_the_spark_of_constraints_spark35():
    text = (ROOT / "databricks.yml").read_text()
    overrides = dict(re.findall(r"--var (\w+)=(\S+)", text))
    assert set(overrides) == {"spark_version", "ml_spark_version", "gpu_spark_version"}
    for target in TARGETS:
        for cluster in (c["new_cluster"] for c in resolved_job(target, **overrides)["job_clusters"]):
            spark = _runtime_spark(cluster["spark_version"])
            assert _minor(spark) == _minor(_pin("constraints-spark35.txt", "pyspark")) == "3.5"


def test_only_prod_runs_on_schedule():
    for target in TARGETS:
        schedule = resolved_job(target)["schedule"]
        assert schedule["quartz_cron_expression"] == "0 0 4 * * ?" and schedule["timezone_id"] == "UTC"
        assert schedule["pause_status"] == ("UNPAUSED" if target == "prod" else "PAUSED"), target
    assert resolved_job("prod")["max_concurrent_runs"] == 1


def test_databricks_storage_is_unity_catalog_and_targets_never_share_it():
    places = {}
    for target, env in TARGET_ENV.items():
        settings = load_settings(env, ROOT / "conf")
        storage = settings.storage.model_dump(by_alias=True)
        catalog, schema = storage["catalog"], storage["schema"]
        assert storage["root"] is None, target  # tables addressed by name (catalog.schema.table)
        assert storage["files"] == f"/Volumes/{catalog}/{schema}/files", target
        assert storage["landing"] == f"/Volumes/{catalog}/{schema}/landing", target
        assert settings.model.registered_name.split(".")[0] == catalog, target
        assert (settings.spark.delta_jars, settings.mlflow.tracking_uri, settings.mlflow.registry_uri) == (
            "provided", "databricks", "databricks-uc")
        places[target] = ((catalog, schema), settings.model.registered_name, settings.mlflow.experiment)
    for i in range(3):  # schemas (and their volumes), models, experiments: one per target
        assert len({place[i] for place in places.values()}) == len(TARGETS), places
    assert places["prod"][0] == ("lakeforge", "lakehouse")


def test_no_deployment_file_names_dbfs():
    files = sorted({path for pattern in DEPLOYMENT_FILES for path in ROOT.glob(pattern) if path.is_file()})
    assert len(files) >= 11
    assert [str(p.relative_to(ROOT)) for p in files if re.search(r"dbfs:|/dbfs/", p.read_text(), re.IGNORECASE)] == []


def test_an_environment_extends_another(conf_copy):
    (conf_copy / "emr_x.yaml").write_text("extends: emr\nmodel: {seed: 7}\n")
    settings = load_settings("emr_x", conf_copy)
    assert (settings.env, settings.model.seed, settings.storage.root) == ("emr_x", 7, "s3://lakeforge-lakehouse/prod")
    (conf_copy / "emr.yaml").write_text("extends: emr_x\n")
    with pytest.raises(ConfigError) as err:
        load_settings("emr_x", conf_copy)
    assert str(err.value) == f"{conf_copy / 'emr.yaml'}: extends: 'emr_x' makes a cycle (emr_x -> emr -> emr_x)"
    (conf_copy / "emr.yaml").write_text("extends: nowhere\n")
    with pytest.raises(ConfigError) as err:
        load_settings("emr_x", conf_copy)
    assert str(err.value).startswith(f"{conf_copy / 'emr.yaml'}: extends: unknown environment 'nowhere'; available: ")


# --- EMR ----------------------------------------------------------------------------------------------------------

# RunJobFlow request members used here: a subset of botocore's EMR service model (1.44.8).
FLEET_KEYS = {"Name", "InstanceFleetType", "TargetOnDemandCapacity", "TargetSpotCapacity", "InstanceTypeConfigs",
              "LaunchSpecifications", "ResizeSpecifications", "Context"}
INSTANCE_TYPE_KEYS = {"InstanceType", "WeightedCapacity", "BidPrice", "BidPriceAsPercentageOfOnDemandPrice",
                      "EbsConfiguration", "Configurations", "CustomAmiId", "Priority"}
RUN_JOB_FLOW_KEYS = {"Name", "LogUri", "ReleaseLabel", "Instances", "Steps", "BootstrapActions", "Applications",
                     "Configurations", "VisibleToAllUsers", "JobFlowRole", "ServiceRole", "Tags",
                     "SecurityConfiguration", "AutoScalingRole", "ScaleDownBehavior", "EbsRootVolumeSize",
                     "StepConcurrencyLevel", "ManagedScalingPolicy", "AutoTerminationPolicy", "CustomAmiId",
                     "OSReleaseLabel"}
INSTANCES_KEYS = {"InstanceFleets", "Ec2SubnetIds", "Ec2KeyName", "KeepJobFlowAliveWhenNoSteps", "TerminationProtected",
                  "EmrManagedMasterSecurityGroup", "EmrManagedSlaveSecurityGroup", "ServiceAccessSecurityGroup",
                  "AdditionalMasterSecurityGroups", "AdditionalSlaveSecurityGroups", "UnhealthyNodeReplacement"}


def test_emr_release_is_the_spark35_line_with_its_own_delta():
    emr, cluster = _emr(), _emr().load_cluster()
    assert cluster["ReleaseLabel"] == "emr-7.13.0"
    release = emr.RELEASES[cluster["ReleaseLabel"]]
    assert _minor(release["spark"]) == _minor(_pin("constraints-spark35.txt", "pyspark")) == "3.5"
    assert release["delta"].split("-")[0] == _pin("constraints-spark35.txt", "delta-spark") == "3.3.2"
    # No EMR release carries the main line's Spark 4.2 / Delta 4.4 yet (docs/clusters.md says so).
    assert not any(_minor(r["spark"]) == _minor(_pin("constraints.txt", "pyspark")) for r in emr.RELEASES.values())
    assert "not deployable on EMR yet" in " ".join((ROOT / "docs" / "clusters.md").read_text().split())
    configurations = {c["Classification"]: c for c in cluster["Configurations"]}
    assert configurations["delta-defaults"]["Properties"] == {"delta.enabled": "true"}
    defaults = configurations["spark-defaults"]["Properties"]
    assert defaults["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert defaults["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert load_settings("emr", ROOT / "conf").spark.delta_jars == "provided"


def test_emr_fleets_on_demand_primary_and_core_spot_tasks():
    cluster = _emr().load_cluster()
    assert set(cluster) <= RUN_JOB_FLOW_KEYS and set(cluster["Instances"]) <= INSTANCES_KEYS
    assert [a["Name"] for a in cluster["Applications"]] == ["Hadoop", "Spark"]
    fleets = {f["InstanceFleetType"]: f for f in cluster["Instances"]["InstanceFleets"]}
    assert list(fleets) == ["MASTER", "CORE", "TASK"]
    for fleet in fleets.values():
        assert set(fleet) <= FLEET_KEYS
        assert all(set(c) <= INSTANCE_TYPE_KEYS for c in fleet["InstanceTypeConfigs"])
    assert fleets["MASTER"]["TargetOnDemandCapacity"] == 1 and "TargetSpotCapacity" not in fleets["MASTER"]
    assert fleets["CORE"]["TargetOnDemandCapacity"] == 4 and "TargetSpotCapacity" not in fleets["CORE"]
    task = fleets["TASK"]
    assert task["TargetSpotCapacity"] == 8 and "TargetOnDemandCapacity" not in task
    types = [c["InstanceType"] for c in task["InstanceTypeConfigs"]]
    assert len(types) == len(set(types)) >= 4
    assert task["LaunchSpecifications"]["SpotSpecification"] == {
        "AllocationStrategy": "price-capacity-optimized", "TimeoutDurationMinutes": 20,
        "TimeoutAction": "SWITCH_TO_ON_DEMAND"}
    assert cluster["StepConcurrencyLevel"] == 1 and cluster["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True


def test_emr_steps_are_the_launchers_commands_for_yarn_cluster_mode():
    emr = _emr()
    cluster, steps = emr.load_cluster(), emr.load_steps()
    assert steps == emr.steps_from_launcher(cluster), \
        "conf/emr/steps.json is stale: run .venv/bin/python conf/emr/print_commands.py --write-steps"
    prefix = "s3://lakeforge-artifacts/prod/lakeforge"
    assert emr.artifact_prefix(cluster) == prefix
    assert [s["Name"] for s in steps] == [f"lakeforge-{job}" for job in CHAIN]
    for step, job in zip(steps, CHAIN):
        assert set(step) == {"Type", "Name", "ActionOnFailure", "Jar", "Args"}
        assert (step["Type"], step["Jar"], step["ActionOnFailure"]) == ("CUSTOM_JAR", "command-runner.jar", "CANCEL_AND_WAIT")
        args = step["Args"]
        assert args[:5] == ["spark-submit", "--master", "yarn", "--deploy-mode", "cluster"]
        options = dict(zip(args[1:-1:2], args[2::2]))
        assert options["--py-files"] == f"{prefix}/lakeforge-{lakeforge.__version__}-py3-none-any.whl"
        assert options["--archives"] == f"{prefix}/conf.zip#lakeforge_conf"
        confs = [v for k, v in itertools.pairwise(args) if k == "--conf"]
        assert {"spark.dynamicAllocation.enabled=false", "spark.executor.memoryOverhead=2g",
                f"spark.app.name=lakeforge-{job}"} <= set(confs)
        jars = [j for k, v in itertools.pairwise(args) if k == "--jars" for j in v.split(",")]
        jars += [j for c in confs if c.startswith(("spark.jars=", "spark.jars.packages=")) for j in c.split("=", 1)[1].split(",")]
        assert [j for j in jars if j.rsplit("/", 1)[-1].startswith(emr.SHIPPED_JARS) or "delta" in j] == [], job
        at = args.index(f"{prefix}/jobs/{job}.py")
        job_args = args[at + 1:]
        assert job_args == ["--env", "emr", *TASK_ARGS[job], "--conf-dir", "lakeforge_conf"]
        assert (ROOT / "jobs" / f"{job}.py").is_file() and (ROOT / "conf" / "emr.yaml").is_file()
        parsed = parse_job_args(job, job_args)
        assert (parsed.env, parsed.conf_dir) == ("emr", "lakeforge_conf")
    assert not any("--jars" in s["Args"] for s in steps)  # conf/emr.yaml: no spark.packages, Delta is EMR's
    bootstrap = cluster["BootstrapActions"][0]["ScriptBootstrapAction"]
    assert bootstrap == {"Path": f"{prefix}/bootstrap.sh",
                         "Args": [f"{prefix}/lakeforge-{lakeforge.__version__}-py3-none-any.whl",
                                  f"{prefix}/constraints-spark35.txt"]}


def test_print_commands_prints_the_cluster_and_every_step():
    emr = _emr()
    out = io.StringIO()
    with redirect_stdout(out):
        assert emr.main([]) == 0
    lines = out.getvalue().splitlines()
    cluster, steps = emr.load_cluster(), emr.load_steps()
    add_steps = [shlex.split(line) for line in lines if line.startswith("aws emr add-steps")]
    assert [json.loads(cmd[-1]) for cmd in add_steps] == [[step] for step in steps]
    assert all(cmd[:6] == ["aws", "emr", "add-steps", "--cluster-id", "$CLUSTER_ID", "--steps"] for cmd in add_steps)
    text = out.getvalue()
    start = text.index("CLUSTER_ID=$(") + len("CLUSTER_ID=$(")
    create = shlex.split(text[start:text.index(")\n", start)].replace("\\\n", " "))
    assert create[:3] == ["aws", "emr", "create-cluster"]
    flags = {create[i]: create[i + 1] for i in range(3, len(create) - 1) if create[i].startswith("--")}
    assert json.loads(flags["--instance-fleets"]) == cluster["Instances"]["InstanceFleets"]
    assert json.loads(flags["--configurations"]) == cluster["Configurations"]
    assert json.loads(flags["--bootstrap-actions"]) == [{"Name": "install-lakeforge",
                                                        **cluster["BootstrapActions"][0]["ScriptBootstrapAction"]}]
    assert (flags["--release-label"], flags["--service-role"]) == ("emr-7.13.0", "EMR_DefaultRole")
    uploads = {shlex.split(line)[-1] for line in lines if line.startswith("aws s3 cp ")}
    prefix = emr.artifact_prefix(cluster)
    assert uploads == {f"{prefix}/lakeforge-{lakeforge.__version__}-py3-none-any.whl", f"{prefix}/conf.zip",
                       f"{prefix}/bootstrap.sh", f"{prefix}/constraints-spark35.txt",
                       *(f"{prefix}/jobs/{job}.py" for job in CHAIN)}  # and no jar: the cluster has them all
    assert "aws s3 cp constraints-spark35.txt " in text


def _bootstrap(tmp_path, *args: str, pyspark_installed: bool = False) -> tuple[subprocess.CompletedProcess, Path]:
    bucket, bin_dir, log = tmp_path / "bucket", tmp_path / "bin", tmp_path / "calls.log"
    (bucket / "lf").mkdir(parents=True, exist_ok=True)
    bin_dir.mkdir(exist_ok=True)
    (bucket / "lf" / f"lakeforge-{lakeforge.__version__}-py3-none-any.whl").write_text("wheel\n")
    (bucket / "lf" / "constraints-spark35.txt").write_text("xgboost==3.2.0\n")
    # aws s3 cp copies from the fake bucket; sudo runs its command; the python records what it is asked to do, and
    # answers `pip show pyspark` as asked
    (bin_dir / "aws").write_text(f'#!/bin/bash\nsrc="${{@: -2:1}}"; dst="${{@: -1}}"\n'
                                 f'[[ -d "$dst" ]] && dst="$dst/$(basename "$src")"\n'
                                 f'cp "{bucket}/${{src#s3://b/}}" "$dst"\n')
    (bin_dir / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/bash\necho "$@" >> {log}\n'
                                    f'[[ "$3" == show ]] && exit {0 if pyspark_installed else 1}\n'
                                    'if [[ "$1" == -m ]]; then for a in "$@"; do [[ -f "$a" ]] && cat "$a" >> '
                                    f'{log}; done; fi\nexit 0\n')
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LAKEFORGE_PYTHON": str(bin_dir / "python")}
    proc = subprocess.run(["bash", str(ROOT / "conf" / "emr" / "bootstrap.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    return proc, log


def test_bootstrap_installs_the_wheel_with_the_spark35_pins_and_no_pyspark(tmp_path):
    wheel = f"lakeforge-{lakeforge.__version__}-py3-none-any.whl"
    proc, log = _bootstrap(tmp_path, f"s3://b/lf/{wheel}", "s3://b/lf/constraints-spark35.txt")
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    install = calls[0].split()
    assert install[:5] == ["-m", "pip", "install", "--quiet", "--no-warn-script-location"]
    assert install[5] == "-c" and install[6].endswith("/constraints.txt") and install[7].endswith(f"/{wheel}")
    assert calls[1:3] == ["xgboost==3.2.0", "wheel"]  # the pins and the wheel that were downloaded
    assert calls[3] == "-m pip show --quiet pyspark" and calls[4].startswith("-c import lakeforge")
    proc, _ = _bootstrap(tmp_path / "again", f"s3://b/lf/{wheel}", pyspark_installed=True)
    assert proc.returncode == 1 and "the jobs must use EMR's own Spark" in proc.stderr
    proc, _ = _bootstrap(tmp_path / "bare")
    assert proc.returncode != 0 and "usage: bootstrap.sh" in proc.stderr
