from pathlib import Path

import pytest
import yaml

from lakeforge.config import ConfigError, load_settings
from tests.conftest import ROOT


@pytest.mark.parametrize("env", ["local", "emr", "databricks"])
def test_every_environment_loads(env):
    settings = load_settings(env, ROOT / "conf")
    assert settings.env == env
    assert set(settings.sources) == {"flights", "flights_stream", "weather", "planes", "airports", "airlines"}
    assert settings.sources["flights_stream"].columns == settings.sources["flights"].columns  # like: flights
    assert settings.sources["weather"].primary_key == ("origin", "year", "month", "day", "hour")


def test_local_paths_resolve_against_the_project_root():
    settings = load_settings("local", ROOT / "conf")
    assert settings.storage.root == str(ROOT / "data" / "lakehouse")
    assert settings.mlflow.tracking_uri == f"sqlite:///{ROOT}/data/mlflow/mlflow.db"
    assert settings.mlflow.artifact_root == (ROOT / "data" / "mlflow" / "artifacts").as_uri()
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "4"  # local.yaml overrides base.yaml


def test_emr_keeps_remote_paths():
    settings = load_settings("emr", ROOT / "conf")
    assert settings.storage.root == "s3://lakeforge-lakehouse/prod"
    assert settings.storage.table_path("silver", "flights") == "s3://lakeforge-lakehouse/prod/silver/flights"


def test_settings_are_frozen():
    settings = load_settings("local", ROOT / "conf")
    with pytest.raises(Exception, match="frozen"):
        settings.model.num_workers = 3


def _edit(path: Path, edit) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc))


def test_unknown_key_names_file_key_path_and_allowed_keys(conf_copy):
    _edit(conf_copy / "local.yaml", lambda d: d["spark"].update(shuffle_partitions=4))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'local.yaml'}: spark.shuffle_partitions: unknown key; "
                              "allowed keys here: app_name, conf, delta_jars, event_log_dir, jar_cache, master, packages, python")


def test_wrong_type_names_the_file_that_set_it(conf_copy):
    _edit(conf_copy / "local.yaml", lambda d: d.update(model={"num_workers": "two"}))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'local.yaml'}: model.num_workers: Value error, expected a positive "
                              "integer, or auto (one worker per task slot of the cluster) (got 'two')")


def test_out_of_range_value(conf_copy):
    _edit(conf_copy / "base.yaml", lambda d: d["model"].update(min_auc=1.5))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'base.yaml'}: model.min_auc: Input should be less than or equal to 1 "
                              "(got 1.5)")


def test_secrets_are_refused_in_yaml(conf_copy):
    _edit(conf_copy / "local.yaml", lambda d: d.update(mlflow={"token": "abc"}))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'local.yaml'}: mlflow.token: secrets must not be stored in YAML; "
                              "name an environment variable instead (for example token_env: MY_VAR)")


def test_unknown_environment_lists_the_available_ones(conf_copy):
    with pytest.raises(ConfigError) as err:
        load_settings("staging", conf_copy)
    assert str(err.value) == f"{conf_copy / 'staging.yaml'}: unknown environment 'staging'; available: databricks, databricks_dev, databricks_gpu, databricks_staging, emr, local, local_torch, standalone"


def test_source_key_must_be_declared_columns(conf_copy):
    _edit(conf_copy / "sources" / "planes.yaml", lambda d: d.update(primary_key=["tail_number"]))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'sources' / 'planes.yaml'}: sources.planes: Value error, primary_key "
                              "must name declared columns; not declared: ['tail_number']")


def test_join_must_use_the_joined_sources_primary_key(conf_copy):
    _edit(conf_copy / "base.yaml", lambda d: d["features"]["joins"][0].update(keys=["origin", "year"]))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (
        f"{conf_copy / 'base.yaml'}: (top level): Value error, features.joins: joining 'weather' on ['origin', 'year'] "
        "could repeat rows; join on its primary key ['origin', 'year', 'month', 'day', 'hour']")


def test_invalid_yaml_names_the_file(conf_copy):
    (conf_copy / "local.yaml").write_text("spark: [unclosed\n")
    with pytest.raises(ConfigError, match=r"local\.yaml: not valid YAML"):
        load_settings("local", conf_copy)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(spark={"conf": {"spark.hadoop.fs.s3a.secret.key": "abc123"}}),
     "local.yaml: spark.conf.spark.hadoop.fs.s3a.secret.key: secrets must not be stored in YAML; Spark settings go on "
     "spark-submit's command line, where anyone on the machine can read them: give cloud credentials through the "
     "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AZURE_CLIENT_SECRET ...) or, better, an instance "
     "profile or cluster role"),
    (lambda d: d.update(monitor={"webhook_url": "https://hooks.example.com/services/T0?token=s3cr3t"}),
     "local.yaml: monitor.webhook_url: a credential in the URL; secrets must not be stored in YAML; set "
     "monitor.webhook_url_env to the name of an environment variable holding the URL"),
    (lambda d: d.update(mlflow={"tracking_uri": "postgresql://mlflow:hunter2@db.internal:5432/mlflow"}),
     "local.yaml: mlflow.tracking_uri: a user and password inside the URL; secrets must not be stored in YAML; name "
     "an environment variable instead (for example tracking_uri_env: MY_VAR)"),
])
def test_credentials_in_spark_settings_and_urls_are_refused(conf_copy, edit, expected):
    _edit(conf_copy / "local.yaml", edit)
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == f"{conf_copy}/{expected}"


def test_a_jdbc_url_with_a_password_is_refused_and_harmless_settings_pass(conf_copy):
    original = (conf_copy / "sources" / "airlines.yaml").read_text()
    source = yaml.safe_load(original)
    source.update(kind="jdbc", path=None, jdbc={"url": "jdbc:postgresql://db:5432/x?user=a&password=b", "table": "t"})
    (conf_copy / "sources" / "airlines.yaml").write_text(yaml.safe_dump(source))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'sources' / 'airlines.yaml'}: jdbc.url: a credential in the URL; secrets "
                              "must not be stored in YAML; keep the URL without it and name the password's "
                              "environment variable in jdbc.password_env")
    (conf_copy / "sources" / "airlines.yaml").write_text(original)
    _edit(conf_copy / "local.yaml", lambda d: d["spark"]["conf"].update({
        "spark.security.credentials.hive.enabled": "false", "spark.sql.shuffle.partitions": 4}))
    assert load_settings("local", conf_copy).spark.conf["spark.security.credentials.hive.enabled"] == "false"
