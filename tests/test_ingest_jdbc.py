"""JDBC sources against a real PostgreSQL: incremental reads by watermark, secrets from the environment."""

import pytest
from pydantic import SecretStr

from lakeforge.config import ColumnSpec, JdbcSpec, SourceSpec
from lakeforge.ingest import bronze_table, ingest_source, silver_table
from lakeforge.ingest.jdbc import JdbcSecretMissingError
from tests.conftest import settings_for
from tests.support.postgres import psql


def _source(server, table: str) -> SourceSpec:
    return SourceSpec(
        name="accounts", kind="jdbc",
        jdbc=JdbcSpec(url=server.jdbc_url, table=table, user=server.user, password_env="ACCOUNTS_DB_PASSWORD",
                      watermark_column="updated_at"),
        columns=(ColumnSpec(name="id", type="int", nullable=False),
                 ColumnSpec(name="balance", type="double", check="balance >= 0"),
                 ColumnSpec(name="updated_at", type="timestamp", nullable=False)),
        primary_key=("id",), event_time="updated_at",
    )


@pytest.fixture
def accounts(postgres, tmp_path, request):
    table = f"accounts_{request.node.name[-8:].replace('[', '_').replace(']', '_')}".lower()
    psql(postgres, f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, balance double precision, "
                   "updated_at timestamp NOT NULL);"
                   f"INSERT INTO {table} VALUES (1, 10.0, '2024-01-01 00:00:00.000001'), (2, 20.0, '2024-01-01 00:00:01'), "
                   "(3, -1.0, '2024-01-01 00:00:02');")
    settings = settings_for(tmp_path, sources={"accounts": _source(postgres, table)},
                            jdbc_passwords={"accounts": SecretStr(postgres.password)})
    return settings, table


def test_incremental_reads_only_new_and_changed_rows(spark, postgres, accounts):
    settings, table = accounts
    first = ingest_source(spark, settings, "accounts")
    assert (first.rows_read, first.quarantined, first.silver_inserted) == (3, 1, 2)

    again = ingest_source(spark, settings, "accounts")                 # nothing changed in the database
    assert (again.rows_read, again.bronze_appended, again.silver_rows) == (0, False, 2)

    psql(postgres, f"UPDATE {table} SET balance = 15.0, updated_at = '2024-01-02 00:00:00' WHERE id = 1;"
                   f"INSERT INTO {table} VALUES (4, 40.0, '2024-01-02 00:00:01');")
    third = ingest_source(spark, settings, "accounts")
    assert (third.rows_read, third.silver_inserted, third.silver_updated, third.silver_rows) == (2, 1, 1, 3)
    silver = {r["id"]: r["balance"] for r in spark.read.format("delta").load(silver_table(settings, "accounts")).collect()}
    assert silver == {1: 15.0, 2: 20.0, 4: 40.0}
    assert spark.read.format("delta").load(bronze_table(settings, "accounts")).count() == 5


def test_missing_password_variable_is_named(spark, accounts):
    settings, _ = accounts
    with pytest.raises(JdbcSecretMissingError) as err:
        ingest_source(spark, settings.model_copy(update={"jdbc_passwords": {}}), "accounts")
    assert str(err.value) == ("source 'accounts' reads its database password from the environment variable "
                              "ACCOUNTS_DB_PASSWORD, which is not set")


def test_retyped_database_column_is_rejected(spark, postgres, accounts):
    settings, table = accounts
    psql(postgres, f"ALTER TABLE {table} ALTER COLUMN balance TYPE text;")
    with pytest.raises(Exception, match=r"changed column type\(s\): balance: declared double, found string"):
        ingest_source(spark, settings, "accounts")
