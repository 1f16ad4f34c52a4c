"""The errors lakeforge raises on purpose, and the exit code each one gives a job.

Every error raised on purpose derives from ``LakeforgeError`` and carries its ``exit_code``; its message already
says what is wrong and how to fix it, so a job prints it as one ``error:`` line. Anything else that escapes a
job is a bug (or a failure of the platform underneath) and is shown with its full traceback, exit code 1.

| code | meaning |
|---:|---|
| 0 | done |
| 1 | unexpected failure: a bug or an infrastructure failure (traceback); rerunning may help |
| 2 | input or configuration error: fix the named file, key, column or table, then rerun |
| 3 | monitoring alert: a metric reached its alert level (the job itself finished) |
| 4 | the registry gate refused the challenger (``gate --require-promotion``) |
| 5 | a data-quality expectation stopped a batch (bronze keeps it, silver is untouched) |

The subclasses also derive from the builtin they replace (``ValueError``, ``FileNotFoundError`` ...), so code
that catches the builtin keeps working.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_ALERT = 3
EXIT_NOT_PROMOTED = 4
EXIT_DATA_QUALITY = 5

EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILURE: "unexpected failure (a bug or an infrastructure failure; the traceback is printed)",
    EXIT_INPUT: "input or configuration error (the message names what to fix)",
    EXIT_ALERT: "monitoring alert (a metric reached its alert level)",
    EXIT_NOT_PROMOTED: "the registry gate refused the challenger (gate --require-promotion)",
    EXIT_DATA_QUALITY: "a data-quality expectation stopped a batch",
}


class LakeforgeError(Exception):
    """Base of every error lakeforge raises on purpose."""

    exit_code = EXIT_INPUT


class InputError(LakeforgeError, ValueError):
    """Input data, a table or configuration that cannot be used as it is; the message says how to fix it."""


class MissingInputError(LakeforgeError, FileNotFoundError):
    """A table, file or artifact that a step needs does not exist yet; the message names the step that makes it."""


class EnvironmentSetupError(LakeforgeError, RuntimeError):
    """The machine or environment lacks something a job needs (Java, a key, a jar, a secret)."""


class InfrastructureError(LakeforgeError, RuntimeError):
    """A failure of the platform underneath (conflicting writers after every retry, a distributed run that died):
    not the input's fault; rerunning may succeed. Exit 1, with the traceback."""

    exit_code = EXIT_FAILURE


class DataQualityError(LakeforgeError, RuntimeError):
    """A batch breached a data-quality expectation; silver was not touched and bronze keeps the batch."""

    exit_code = EXIT_DATA_QUALITY


class ModelNotFoundError(LakeforgeError, LookupError):
    """The registry has no such model, alias or version."""


class DeepTrainingError(InfrastructureError):
    """A distributed training run failed; the message carries the backend's own error."""


class ConfigError(InputError):
    """Configuration that cannot be loaded; the message names file, key path and the fix."""


class JavaNotFoundError(EnvironmentSetupError):
    """No usable Java runtime for Spark."""


class LaunchError(InputError):
    """The job cannot be launched as asked (unknown job, missing --env, a bad --conf, no spark.python)."""


class DeltaConflictError(InfrastructureError):
    """A Delta commit kept conflicting with concurrent writers after every retry."""


class TrainingConfigError(InputError):
    """A training setting that cannot work; raised before any Spark job."""


class RetentionTooShortError(InputError):
    """VACUUM was asked to delete files younger than the table's safe retention."""


class PiiKeyMissingError(EnvironmentSetupError):
    """A source declares PII columns and no hashing key is configured."""


class JdbcSecretMissingError(EnvironmentSetupError):
    """The source's password variable is not set."""


class KafkaBrokerError(InfrastructureError):
    """The local Kafka broker (``lakeforge.local_kafka``, demo and tests) did not start."""


class KafkaSecretMissingError(EnvironmentSetupError):
    """A variable a Kafka source names for a secret (SASL password, store password) is not set."""


class BatchRejectedError(InputError):
    """A file that cannot be a batch at all; nothing was written."""


class JarResolutionError(EnvironmentSetupError):
    """The jars could not be resolved by any method."""


class SignatureMismatchError(InputError):
    """The input table does not provide what the model's signature requires; nothing was written."""


class PredictionsTableError(InputError):
    """The predictions table exists but lacks the lineage columns batches are found and replaced by."""


class EmptyInputError(InputError):
    """The input has no rows to score; nothing was written."""


class ChangeDataFeedError(InputError):
    """The source cannot be read incrementally; the message says how to fix it."""


class UnsupportedExpressionError(InputError):
    """A ``features.derived`` expression the Spark-free serving model cannot evaluate (``models.expressions``)."""


class InvalidRecordsError(InputError):
    """Records sent for online scoring that do not match the model's inputs: ``field`` names the first bad field,
    ``expected`` its JSON type (the service answers 422)."""

    def __init__(self, message: str, field: str, expected: str):
        super().__init__(message)
        self.field, self.expected = field, expected


class RequestRefused(LakeforgeError):
    """An HTTP request the service refuses: ``status`` (401, 403, 404, 413, 400, 422, 429, 503), the message, and
    headers and JSON fields to answer with."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: object):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra
