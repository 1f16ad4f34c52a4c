"""The JVM-side HMAC-SHA256 of PII columns agrees with Python's ``hmac`` (so values hashed before still join) and
keeps the key out of query plans."""

import pytest

from lakeforge.ingest.pii import PiiKeyMissingError, _pads, hash_columns, hmac_hex

VALUES = ["N14228", "", "é-ü ∑ 漢字", "x" * 300, None]


@pytest.mark.parametrize("key", [b"test-key-0123456789abcdef", b"k", b"K" * 64, b"long-key-" * 20])
def test_spark_hmac_equals_python_hmac(spark, key):
    frame = spark.createDataFrame([(i, v, v) for i, v in enumerate(VALUES)], "i int, v string, clear string")
    rows = hash_columns(frame, ["v"], key).orderBy("i").collect()
    assert [r["v"] for r in rows] == [None if v is None else hmac_hex(key, v) for v in VALUES]
    assert [r["clear"] for r in rows] == VALUES                      # other columns untouched, in place
    assert hash_columns(frame, ["v"], key).columns == frame.columns


def test_non_string_values_hash_their_string_form(spark):
    key = b"abc"
    rows = hash_columns(spark.createDataFrame([(42,)], "n int"), ["n"], key).collect()
    assert rows[0]["n"] == hmac_hex(key, "42")


def test_key_never_appears_in_the_plan(spark):
    key = b"a-very-secret-key-value"
    hashed = hash_columns(spark.createDataFrame([("N1",)], "v string"), ["v"], key)
    plan = hashed._jdf.queryExecution().toString()
    ipad, opad = _pads(key)
    for secret in (key.hex(), ipad.hex(), opad.hex(), key.decode()):
        assert secret.lower() not in plan.lower()


def test_missing_or_empty_key_refuses(spark):
    frame = spark.createDataFrame([("N1",)], "v string")
    with pytest.raises(PiiKeyMissingError):
        hash_columns(frame, ["v"], None)
    with pytest.raises(PiiKeyMissingError):
        hash_columns(frame, ["v"], b"")
    assert hash_columns(frame, [], None) is frame
