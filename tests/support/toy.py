"""The toy training data the training, resume and exit-code tests share: seeded rows whose label needs an
interaction of two features, with a categorical and a date for the time split."""

import datetime as dt
import random

from lakeforge.config import FeatureSettings, SplitSettings

FEATURES = FeatureSettings(
    table="toy", base="toy", label="y", categorical=("c",), numeric=("x1", "x2"),
    split=SplitSettings(column="d", test_from="2024-03-01"),
)


TOY_SCHEMA = "id long, c string, x1 double, x2 double, y int, d date"


def toy_rows(count: int) -> list[tuple]:
    """Seeded rows whose label needs both features (an interaction): a stump cannot learn it."""
    rng = random.Random(11)
    rows = []
    for i in range(count):
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        y = int((x1 * x2 > 0) != (rng.random() < 0.1))
        rows.append((i, rng.choice("abc"), x1, x2, y, dt.date(2024, 1, 1) + dt.timedelta(days=i % 90)))
    return rows
