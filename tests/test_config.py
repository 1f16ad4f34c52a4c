from pathlib import Path

import pytest
import yaml

from lakeforge.config import ConfigError, load_settings
from tests.conftest import ROOT


@pytest.mark.parametrize("env", ["local", "emr", "databricks"])
def test_every_environment_loads(env):
    settings = load_settings(env, ROOT / "conf")
    assert settings.env == env
    assert set(settings.sources) == {"flights", "flights_stream", "flights_kafka", "weather", "planes", "airports",
                                     "airlines"}
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
    assert settings.storage.table_ref("silver", "flights") == "s3://lakeforge-lakehouse/prod/silver/flights"


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
    assert str(err.value) == f"{conf_copy / 'staging.yaml'}: unknown environment 'staging'; available: databricks, databricks_dev, databricks_gpu, databricks_staging, emr, local, local_catalog, local_s3, local_s3_multiwriter, local_torch, standalone"


def test_source_key_must_be_declared_columns(conf_copy):
    _edit(conf_copy / "sources" / "planes.yaml", lambda d: d.update(primary_key=["tail_number"]))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'sources' / 'planes.yaml'}: sources.planes: Value error, primary_key "
                              "must name declared columns; not declared: ['tail_number']")


def test_join_must_use_the_joined_sources_primary_key(conf_copy):
    def exact_on(keys):
        return lambda d: d["features"]["joins"][0].update(keys=keys, as_of=None)

    _edit(conf_copy / "base.yaml", exact_on(["origin", "year"]))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (
        f"{conf_copy / 'base.yaml'}: (top level): Value error, features.joins: joining 'weather' on ['origin', 'year'] "
        "could repeat rows; join on its primary key ['origin', 'year', 'month', 'day', 'hour']")
    # an as-of join's keys are the keys besides time: the station alone is fine
    _edit(conf_copy / "base.yaml", lambda d: d["features"]["joins"][0].update(
        keys=["origin"], as_of={"time": "time_hour", "lookback": "3 hours"}))
    assert load_settings("local", conf_copy).features.joins[0].as_of.lookback_seconds == 10800


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


def test_tables_by_name_in_a_local_catalog_keep_files_apart():
    settings = load_settings("local_catalog", ROOT / "conf")
    storage = settings.storage
    assert storage.by_name and storage.root is None
    assert storage.table_ref("silver", "flights") == "spark_catalog.lakeforge.silver_flights"
    assert storage.table_ref("gold", "flight_features") == "spark_catalog.lakeforge.flight_features"
    assert storage.table_ref("quality", "dq_metrics") == "spark_catalog.lakeforge.dq_metrics"
    assert storage.file_path("_checkpoints", "flights_stream") == f"{ROOT}/data/files/_checkpoints/flights_stream"
    # the session catalog is kept between jobs: a Derby metastore and warehouse under storage.metastore
    assert settings.spark.conf["spark.sql.catalogImplementation"] == "hive"
    assert settings.spark.conf["spark.sql.warehouse.dir"] == f"{ROOT}/data/catalog/warehouse"
    assert settings.spark.conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == (
        f"jdbc:derby:;databaseName={ROOT}/data/catalog/metastore_db;create=true")


def test_a_schema_per_layer_keeps_the_layer_prefix():
    from lakeforge.config import StorageSettings

    storage = StorageSettings(catalog="main", schema="lakeforge", layer_schemas={"bronze": "raw", "gold": "features"},
                              files="/Volumes/main/lakeforge/files", landing="/Volumes/main/lakeforge/landing")
    assert storage.table_ref("bronze", "flights") == "main.raw.bronze_flights"
    assert storage.table_ref("silver", "flights") == "main.lakeforge.silver_flights"
    assert storage.table_ref("gold", "flight_features") == "main.features.flight_features"
    assert storage.file_path("monitoring", "reports") == "/Volumes/main/lakeforge/files/monitoring/reports"


@pytest.mark.parametrize("storage, message", [
    ({"catalog": "main", "schema": "lf", "files": "/Volumes/main/lf/files"},
     "storage.root and storage.schema are both set: tables live either by path under root or by name in schema; "
     "set root: null (and files: a folder or Volume) to address them by name"),
    ({"root": None, "catalog": "main", "schema": "lf"},
     "storage.files is required when tables are addressed by name (schema): the folder or Unity Catalog Volume "
     "(/Volumes/<catalog>/<schema>/<volume>) for checkpoints and reports"),
    ({"root": None}, "storage: set root (tables by path) or schema (tables by name in a catalog)"),
    ({"root": None, "schema": "lf", "files": "/f", "layer_schemas": {"gold_layer": "x"}},
     "storage.layer_schemas: unknown layer(s) ['gold_layer']; layers: bronze, silver, quarantine, quality, gold, "
     "predictions, monitoring, operations, staging"),
])
def test_storage_addresses_tables_one_way(conf_copy, storage, message):
    _edit(conf_copy / "local.yaml", lambda d: d.setdefault("storage", {}).update(storage))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == f"{conf_copy / 'local.yaml'}: storage: Value error, {message}"


def test_tables_by_name_need_names_a_catalog_takes(conf_copy):
    _edit(conf_copy / "local.yaml", lambda d: d.setdefault("storage", {}).update(
        {"root": None, "schema": "lf", "files": "data/files"}))
    _edit(conf_copy / "base.yaml", lambda d: d["score"].update(table="flight-delay.predictions"))
    with pytest.raises(ConfigError) as err:
        load_settings("local", conf_copy)
    assert str(err.value) == (f"{conf_copy / 'base.yaml'}: (top level): Value error, storage.schema addresses tables by name, and "
                              "score.table 'flight-delay.predictions' cannot be part of a table name: use letters, "
                              "digits and _ only")
