"""Spark SQL expressions (``features.derived``) evaluated without Spark, on Arrow arrays.

The gold table computes derived columns per row with Spark SQL (``make_date(year, month, day)``,
``floor(sched_dep_time / 100)`` ...). A served model gets the raw columns and must compute the same values, with no
JVM: this module parses each expression with sqlglot (Spark dialect) and evaluates it with pyarrow's compute kernels,
following Spark's rules where they differ from Arrow's (``/`` is always a double division, a zero divisor gives
null, ``%`` keeps the dividend's sign, ``if``/``CASE`` treat a null condition as false, ``greatest`` skips nulls,
``round`` rounds half away from zero, ``dayofweek`` counts from Sunday = 1, a failed cast is null).

Only the functions below are supported; ``compile_expression`` refuses anything else by name, so a configuration
that cannot be served is known when the model is logged, not on the first request. The model's registration also
compares these values with Spark's on the holdout rows (``models.serving``).

It imports only ``lakeforge.errors`` of lakeforge: the whole package travels inside the logged serving model
(MLflow ``code_paths``), and nothing of it needs Spark.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from lakeforge.errors import UnsupportedExpressionError

Value = pa.Array | pa.ChunkedArray | pa.Scalar
Columns = Mapping[str, pa.Array]


_INTEGER = {exp.DataType.Type.TINYINT: pa.int8(), exp.DataType.Type.SMALLINT: pa.int16(),
            exp.DataType.Type.INT: pa.int32(), exp.DataType.Type.BIGINT: pa.int64()}
_FLOAT = {exp.DataType.Type.FLOAT: pa.float32(), exp.DataType.Type.DOUBLE: pa.float64()}
_COMPARE = {exp.EQ: "equal", exp.NEQ: "not_equal", exp.GT: "greater", exp.GTE: "greater_equal",
            exp.LT: "less", exp.LTE: "less_equal"}
_UNARY = {exp.Abs: "abs", exp.Exp: "exp", exp.Sin: "sin", exp.Cos: "cos", exp.Tan: "tan",
          exp.Lower: "utf8_lower", exp.Upper: "utf8_upper", exp.Length: "utf8_length"}
_DATE_PARTS = {exp.Year: "year", exp.Month: "month", exp.Day: "day", exp.DayOfMonth: "day",
               exp.DayOfYear: "day_of_year", exp.Quarter: "quarter", exp.WeekOfYear: "iso_week",
               exp.Hour: "hour", exp.Minute: "minute", exp.Second: "second"}
SUPPORTED = sorted({"+", "-", "*", "/", "%", "div", "=", "<>", "<", "<=", ">", ">=", "<=>", "AND", "OR", "NOT",
                    "IS [NOT] NULL", "IN", "BETWEEN", "LIKE", "CASE", "CAST", "if", "coalesce", "nvl", "ifnull",
                    "nullif", "isnull", "isnotnull", "greatest", "least", "abs", "sqrt", "exp", "ln", "log",
                    "log10", "log2", "pow", "signum", "floor", "ceil", "round", "sin", "cos", "tan", "lower",
                    "upper", "length", "trim", "concat", "substring", "make_date", "to_date", "date_add",
                    "datediff", "year", "month", "day", "dayofmonth", "dayofyear", "dayofweek", "weekofyear",
                    "quarter", "hour", "minute", "second"})


@dataclass(frozen=True)
class CompiledExpression:
    """One parsed expression: the columns it reads, and ``evaluate(columns, rows)`` giving an Arrow array."""

    text: str
    tree: exp.Expression
    columns: tuple[str, ...]

    def evaluate(self, columns: Columns, rows: int) -> pa.Array:
        value = _Evaluator(columns, rows).eval(self.tree)
        return _broadcast(value, rows)


@functools.lru_cache(maxsize=512)  # a served model evaluates the same few expressions on every request
def compile_expression(text: str) -> CompiledExpression:
    """Parse ``text`` (Spark SQL) and check that every node is supported; raises ``UnsupportedExpressionError`` naming
    the first node that is not."""
    try:
        tree = sqlglot.parse_one(text, read="spark")
    except sqlglot.errors.ParseError as exc:
        raise UnsupportedExpressionError(f"cannot parse {text!r}: {exc}") from None
    for node in tree.walk():
        if not isinstance(node, _KNOWN) and not (isinstance(node, exp.Anonymous) and node.name.lower() in _ANONYMOUS):
            name = node.name if isinstance(node, exp.Anonymous) else node.key
            raise UnsupportedExpressionError(f"{name!r} in {text!r} is not supported without Spark (supported: "
                                        f"{', '.join(SUPPORTED)})")
    names = tuple(dict.fromkeys(c.name for c in tree.find_all(exp.Column)))
    return CompiledExpression(text, tree, names)


def _broadcast(value: Value, rows: int) -> pa.Array:
    if isinstance(value, pa.Scalar):
        return pa.array([value.as_py()] * rows, type=value.type if value.type != pa.null() else pa.null())
    return value.combine_chunks() if isinstance(value, pa.ChunkedArray) else value


def _is_null(value: Value) -> Value:
    return pc.is_null(value, nan_is_null=False)


def _float(value: Value) -> Value:
    return pc.cast(value, pa.float64())


def _where(condition: Value, then: Value, otherwise: Value) -> Value:
    """Spark's ``if``: a null condition takes the ``otherwise`` branch."""
    return pc.if_else(pc.fill_null(condition, False), then, otherwise)


def _null_like(value: Value) -> pa.Scalar:
    return pa.scalar(None, type=value.type)


def _numpy_binary(a: Value, b: Value, rows: int, op: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  integer: bool) -> pa.Array:
    """``op`` on two numeric operands with nulls (and a zero divisor) giving null."""
    a, b = _broadcast(a, rows), _broadcast(b, rows)
    both_int = pa.types.is_integer(a.type) and pa.types.is_integer(b.type)
    kind = np.int64 if (integer or both_int) else np.float64
    x = pc.fill_null(pc.cast(a, pa.from_numpy_dtype(kind)), 0).to_numpy(zero_copy_only=False)
    y = pc.fill_null(pc.cast(b, pa.from_numpy_dtype(kind)), 1).to_numpy(zero_copy_only=False)
    invalid = (_is_null(a).to_numpy(zero_copy_only=False) | _is_null(b).to_numpy(zero_copy_only=False) | (y == 0))
    with np.errstate(all="ignore"):
        out = op(x, np.where(y == 0, 1, y))
    return pa.array(out, mask=invalid)


def spark_string(value: Value, rows: int) -> pa.Array:
    """Values as Spark's CAST(... AS STRING) writes them (booleans ``true``, doubles like Java's toString)."""
    array = _broadcast(value, rows)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    if pa.types.is_boolean(array.type):
        return pc.if_else(array, "true", "false")
    if pa.types.is_floating(array.type):
        return pa.array([None if v is None else java_double(v) for v in array.to_pylist()], pa.string())
    return pc.cast(array, pa.string())


def java_double(value: float) -> str:
    """Java's ``Double.toString`` (what Spark writes for a double): ``1.0``, ``1.0E7``, ``1.5E-4``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)  # Python's shortest repr has a point and no exponent in this range, like Java's
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    scientific = len(digits) - 1 + exponent
    text = "".join(map(str, digits)).rstrip("0") or "0"
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{scientific}"


class _Evaluator:
    def __init__(self, columns: Columns, rows: int):
        self.columns, self.rows = columns, rows
        self.lower = {name.lower(): name for name in columns}

    def eval(self, node: exp.Expression) -> Value:  # noqa: C901 (one dispatch over node types)
        rows = self.rows
        if isinstance(node, exp.Paren):
            return self.eval(node.this)
        if isinstance(node, exp.Column):
            name = node.name if node.name in self.columns else self.lower.get(node.name.lower())
            if name is None:
                raise KeyError(node.name)
            return self.columns[name]
        if isinstance(node, exp.Literal):
            if node.is_string:
                return pa.scalar(node.this, pa.string())
            text = node.this
            return pa.scalar(int(text)) if text.lstrip("-").isdigit() else pa.scalar(float(text))
        if isinstance(node, exp.Boolean):
            return pa.scalar(node.this, pa.bool_())
        if isinstance(node, exp.Null):
            return pa.scalar(None, pa.null())
        if isinstance(node, exp.Neg):
            return pc.negate(self.eval(node.this))
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
            name = {exp.Add: "add", exp.Sub: "subtract", exp.Mul: "multiply"}[type(node)]
            a, b = self.eval(node.this), self.eval(node.expression)
            if name in ("add", "subtract") and pa.types.is_date(getattr(a, "type", None)):
                return self._add_days(a, b if name == "add" else pc.negate(b))
            return pc.call_function(name, [a, b])
        if isinstance(node, exp.Div):
            a, b = _float(self.eval(node.this)), _float(self.eval(node.expression))
            return _numpy_binary(a, b, rows, np.divide, integer=False)
        if isinstance(node, exp.IntDiv):
            a, b = self.eval(node.this), self.eval(node.expression)
            return _numpy_binary(pc.cast(a, pa.int64()) if pa.types.is_integer(a.type) else pc.trunc(_float(a)),
                                 b, rows, lambda x, y: (np.trunc(x / y)).astype(np.int64), integer=False)
        if isinstance(node, exp.Mod):
            return _numpy_binary(self.eval(node.this), self.eval(node.expression), rows, np.fmod, integer=False)
        if type(node) in _COMPARE:
            return pc.call_function(_COMPARE[type(node)], [self.eval(node.this), self.eval(node.expression)])
        if isinstance(node, exp.NullSafeEQ):
            a, b = self.eval(node.this), self.eval(node.expression)
            equal = pc.fill_null(pc.equal(a, b), False)
            return pc.or_(equal, pc.and_(_is_null(a), _is_null(b)))
        if isinstance(node, exp.And):
            return pc.and_kleene(self.eval(node.this), self.eval(node.expression))
        if isinstance(node, exp.Or):
            return pc.or_kleene(self.eval(node.this), self.eval(node.expression))
        if isinstance(node, exp.Not):
            return pc.invert(self.eval(node.this))
        if isinstance(node, exp.Is):
            return _is_null(self.eval(node.this))
        if isinstance(node, exp.In):
            value = _broadcast(self.eval(node.this), rows)
            options = pa.array([self.eval(e).as_py() for e in node.expressions])
            found = pc.is_in(value, value_set=pc.cast(options, value.type))
            return pc.if_else(_is_null(value), pa.scalar(None, pa.bool_()), found)
        if isinstance(node, exp.Between):
            value = self.eval(node.this)
            return pc.and_kleene(pc.greater_equal(value, self.eval(node.args["low"])),
                                 pc.less_equal(value, self.eval(node.args["high"])))
        if isinstance(node, exp.Like):
            value, pattern = self.eval(node.this), self.eval(node.expression)
            return pc.match_like(_broadcast(value, rows), pattern=pattern.as_py())
        if isinstance(node, exp.If):
            otherwise = self.eval(node.args["false"]) if node.args.get("false") else pa.scalar(None, pa.null())
            return self._branch(self.eval(node.this), self.eval(node.args["true"]), otherwise)
        if isinstance(node, exp.Case):
            result = self.eval(node.args["default"]) if node.args.get("default") else pa.scalar(None, pa.null())
            for branch in reversed(node.args["ifs"]):
                result = self._branch(self.eval(branch.this), self.eval(branch.args["true"]), result)
            return result
        if isinstance(node, exp.Coalesce):
            values = [self.eval(node.this), *(self.eval(e) for e in node.expressions)]
            return pc.coalesce(*_common(values))
        if isinstance(node, exp.Nullif):
            a, b = self.eval(node.this), self.eval(node.expression)
            return _where(pc.equal(a, b), _null_like(a), a)
        if isinstance(node, (exp.Greatest, exp.Least)):
            values = _common([self.eval(node.this), *(self.eval(e) for e in node.expressions)])
            name = "max_element_wise" if isinstance(node, exp.Greatest) else "min_element_wise"
            return pc.call_function(name, values, pc.ElementWiseAggregateOptions(skip_nulls=True))
        if type(node) in _UNARY:
            return pc.call_function(_UNARY[type(node)], [self.eval(node.this)])
        if isinstance(node, exp.Sqrt):
            return pc.sqrt(_float(self.eval(node.this)))
        if isinstance(node, exp.Ln):
            value = _float(self.eval(node.this))
            return _where(pc.less_equal(value, 0), pa.scalar(None, pa.float64()), pc.ln(value))
        if isinstance(node, exp.Log):
            base, value = _float(self.eval(node.this)), _float(self.eval(node.expression))
            bad = pc.or_(pc.less_equal(value, 0), pc.less_equal(base, 0))
            return _where(bad, pa.scalar(None, pa.float64()), pc.divide(pc.ln(value), pc.ln(base)))
        if isinstance(node, exp.Pow):
            return pc.power(_float(self.eval(node.this)), _float(self.eval(node.expression)))
        if isinstance(node, exp.Sign):
            return _float(pc.sign(self.eval(node.this)))
        if isinstance(node, (exp.Floor, exp.Ceil)):
            value = self.eval(node.this)
            if pa.types.is_integer(value.type):
                return pc.cast(value, pa.int64())
            rounded = (pc.floor if isinstance(node, exp.Floor) else pc.ceil)(_float(value))
            return pc.cast(rounded, pa.int64(), safe=False) if not pc.any(pc.is_nan(rounded)).as_py() else rounded
        if isinstance(node, exp.Round):
            digits = self.eval(node.args["decimals"]).as_py() if node.args.get("decimals") else 0
            return pc.round(self.eval(node.this), ndigits=digits, round_mode="half_towards_infinity")
        if isinstance(node, exp.Trim):
            return pc.utf8_trim(self.eval(node.this), characters=" ")
        if isinstance(node, exp.Concat):
            parts = [spark_string(self.eval(e), rows) for e in node.expressions]
            return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")
        if isinstance(node, exp.Substring):
            return self._substring(node)
        if isinstance(node, (exp.Cast, exp.TryCast)):
            return self._cast(self.eval(node.this), node.to.this)
        if isinstance(node, exp.TsOrDsToDate):
            return self._to_date(self.eval(node.this))
        if isinstance(node, exp.TsOrDsAdd):
            return self._add_days(self._to_date(self.eval(node.this)), self.eval(node.expression))
        if isinstance(node, exp.DateDiff):
            a, b = self._to_date(self.eval(node.this)), self._to_date(self.eval(node.expression))
            return pc.cast(pc.days_between(b, a), pa.int32())
        if isinstance(node, exp.DayOfWeek):
            return pc.day_of_week(self._to_date(self.eval(node.this)), count_from_zero=False, week_start=7)
        if type(node) in _DATE_PARTS:
            value = self.eval(node.this)
            if type(node) not in (exp.Hour, exp.Minute, exp.Second):
                value = self._to_date(value)
            return pc.cast(pc.call_function(_DATE_PARTS[type(node)], [value]), pa.int32())
        if isinstance(node, exp.Anonymous):
            return self._anonymous(node.name.lower(), [self.eval(e) for e in node.expressions])
        raise UnsupportedExpressionError(f"{node.key!r} is not supported without Spark")

    def _branch(self, condition: Value, then: Value, otherwise: Value) -> Value:
        then, otherwise = _common([then, otherwise])
        return _where(condition, then, otherwise)

    def _anonymous(self, name: str, args: list[Value]) -> Value:
        if name == "isnull":
            return _is_null(args[0])
        if name == "isnotnull":
            return pc.invert(_is_null(args[0]))
        if name == "make_date":
            return self._make_date(*args)
        raise UnsupportedExpressionError(f"function {name!r} is not supported without Spark")

    def _make_date(self, year: Value, month: Value, day: Value) -> pa.Array:
        """Spark's make_date; an impossible date (2013-02-30) is null."""
        parts = [pc.cast(_broadcast(v, self.rows), pa.int64()) for v in (year, month, day)]
        null = np.zeros(self.rows, dtype=bool)
        for part in parts:
            null |= _is_null(part).to_numpy(zero_copy_only=False)
        y, m, d = (pc.fill_null(p, 1).to_numpy(zero_copy_only=False) for p in parts)
        valid = ~null & (m >= 1) & (m <= 12) & (d >= 1) & (y >= 1) & (y <= 9999)
        first = np.array([f"{yy:04d}-{mm:02d}" if ok else "1970-01" for yy, mm, ok in zip(y, m, valid)],
                         dtype="datetime64[M]")
        days = first.astype("datetime64[D]") + (np.where(valid, d, 1) - 1)
        valid &= days.astype("datetime64[M]") == first  # the day stayed in its month
        return pa.array(days, type=pa.date32(), mask=~valid)

    def _to_date(self, value: Value) -> Value:
        kind = value.type
        if pa.types.is_date(kind):
            return value
        if pa.types.is_timestamp(kind):
            return pc.cast(value, pa.date32())
        return self._cast(value, exp.DataType.Type.DATE)

    def _add_days(self, date: Value, days: Value) -> Value:
        as_int = pc.add(pc.cast(pc.cast(date, pa.date32()), pa.int32()), pc.cast(days, pa.int32()))
        return pc.cast(as_int, pa.date32())

    def _substring(self, node: exp.Substring) -> Value:
        start = self.eval(node.args["start"]).as_py()
        length = self.eval(node.args["length"]).as_py() if node.args.get("length") else None
        value = spark_string(self.eval(node.this), self.rows)
        begin = start - 1 if start > 0 else (start if start < 0 else 0)
        if length is None:
            return pc.utf8_slice_codeunits(value, start=begin)
        if begin < 0:
            stop = begin + length
            return pc.utf8_slice_codeunits(value, start=begin, stop=stop if stop < 0 else np.iinfo(np.int64).max)
        return pc.utf8_slice_codeunits(value, start=begin, stop=begin + max(length, 0))

    def _cast(self, value: Value, to: exp.DataType.Type) -> Value:
        """Spark's non-failing cast: what does not convert is null (a double to an integer truncates)."""
        source = value.type
        if to in _INTEGER or to in _FLOAT:
            target = _INTEGER.get(to) or _FLOAT[to]
            if pa.types.is_string(source):
                number = pa.array([_parse_number(v) for v in _broadcast(value, self.rows).to_pylist()], pa.float64())
                return self._cast(number, to)
            if to in _INTEGER and pa.types.is_floating(source):
                finite = pc.is_finite(value)
                return pc.cast(_where(finite, pc.trunc(value), _null_like(value)), target, safe=False)
            return pc.cast(value, target, safe=False)
        if to == exp.DataType.Type.BOOLEAN:
            if pa.types.is_string(source):
                words = {"true": True, "t": True, "yes": True, "y": True, "1": True,
                         "false": False, "f": False, "no": False, "n": False, "0": False}
                return pa.array([None if v is None else words.get(v.strip().lower())
                                 for v in _broadcast(value, self.rows).to_pylist()], pa.bool_())
            return pc.not_equal(value, 0) if not pa.types.is_boolean(source) else value
        if to in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.NVARCHAR):
            return spark_string(value, self.rows)
        if to == exp.DataType.Type.DATE:
            if pa.types.is_string(source):
                return pc.cast(pc.strptime(_broadcast(value, self.rows), format="%Y-%m-%d", unit="s",
                                           error_is_null=True), pa.date32())
            return pc.cast(value, pa.date32())
        raise UnsupportedExpressionError(f"CAST to {to.value} is not supported without Spark")


def _parse_number(text: str | None) -> float | None:
    try:
        return float(text.strip()) if text is not None else None
    except ValueError:
        return None


def _common(values: list[Value]) -> list[Value]:
    """Operands brought to one type (Spark's widening: int with double is double; null takes the other's type)."""
    types = [v.type for v in values if v.type != pa.null()]
    if not types:
        return values
    if all(pa.types.is_integer(t) for t in types):
        target = pa.int64() if any(t == pa.int64() for t in types) else types[0]
    elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
        target = pa.float64()
    else:
        target = types[0]
    return [pc.cast(v, target) if v.type != target else v for v in values]


_KNOWN = (exp.Paren, exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Neg, exp.Add, exp.Sub,
          exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.NullSafeEQ, exp.And, exp.Or, exp.Not, exp.Is, exp.In,
          exp.Between, exp.Like, exp.If, exp.Case, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least, exp.Sqrt,
          exp.Ln, exp.Log, exp.Pow, exp.Sign, exp.Floor, exp.Ceil, exp.Round, exp.Trim, exp.Concat, exp.Substring,
          exp.Cast, exp.TryCast, exp.DataType, exp.TsOrDsToDate, exp.TsOrDsAdd, exp.DateDiff, exp.DayOfWeek,
          exp.Var, *_COMPARE, *_UNARY, *_DATE_PARTS)
_ANONYMOUS = {"isnull", "isnotnull", "make_date"}
