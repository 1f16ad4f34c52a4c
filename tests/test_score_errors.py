import pytest

from lakeforge.score import SignatureMismatchError, check_signature, score_table
from lakeforge.models.registry import ModelNotFoundError, find_version, mlflow_client
from tests.conftest import settings_for

SIGNATURE = [{"name": "carrier", "type": "string"}, {"name": "distance", "type": "double"},
             {"name": "temp", "type": "double"}]


def test_signature_accepts_compatible_types(spark):
    frame = spark.createDataFrame([("UA", 100, 50.0)], "carrier string, distance int, temp double")
    check_signature(frame, SIGNATURE, "/t", 3)


def test_signature_mismatch_names_column_type_and_version(spark):
    frame = spark.createDataFrame([("UA", "far")], "carrier string, distance string")
    with pytest.raises(SignatureMismatchError) as err:
        check_signature(frame, SIGNATURE, "/lake/gold/flight_features", 7)
    assert str(err.value) == ("input /lake/gold/flight_features (Delta version 7) does not match the model's signature: "
                              "column 'distance' has type string, expected double; column 'temp' is missing (expected double)")


def test_unknown_model_is_a_clear_error(tmp_path):
    settings = settings_for(tmp_path)
    client = mlflow_client(settings.mlflow)
    with pytest.raises(ModelNotFoundError) as err:
        find_version(client, "no_such_model", alias="champion")
    assert str(err.value) == (f"model 'no_such_model' is not in the registry at {settings.mlflow.tracking_uri}; "
                              "train and register it first (jobs/train.py)")


def test_unknown_alias_lists_the_aliases_in_use(tmp_path):
    settings = settings_for(tmp_path)
    client = mlflow_client(settings.mlflow)
    client.create_registered_model("m")
    with pytest.raises(ModelNotFoundError) as err:
        find_version(client, "m", alias="champion")
    assert str(err.value) == "model 'm' has no alias 'champion' (aliases in use: none)"


def test_scoring_without_a_registered_model_writes_nothing(spark, tmp_path):
    settings = settings_for(tmp_path)
    with pytest.raises(ModelNotFoundError):
        score_table(spark, settings)
    assert not (tmp_path / "lakehouse" / "predictions").exists()
