"""Two real public datasets that ship inside PyPI packages, each configured by YAML alone under
``tests/datasets/<name>/conf/`` (a conf folder of its own, as a user's would be), and how to stage them.

- ``seattle_weather``: a regression with a date column: Seattle's daily weather 2012-2015 (NOAA, public domain),
  as the ``vega_datasets`` package ships it (1,461 rows, dates written 2012/01/01);
- ``breast_cancer``: a classification without any time column and without joins: the Wisconsin diagnostic
  breast cancer data (UCI) as scikit-learn ships it (569 rows, 30 measurements); the file has no header and no
  key, so the staged copy writes the measurement names as its header and numbers the rows (``sample_id``).
"""

from __future__ import annotations

import csv
import importlib.resources
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def stage_seattle_weather(landing: Path) -> int:
    """Copy the file as shipped into ``<landing>/seattle-weather/``; the number of data rows."""
    shipped = importlib.resources.files("vega_datasets") / "_data" / "seattle-weather.csv"
    target = landing / "seattle-weather" / "seattle-weather.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with importlib.resources.as_file(shipped) as path:
        shutil.copyfile(path, target)
    return sum(1 for _ in target.open()) - 1


def stage_breast_cancer(landing: Path) -> int:
    """scikit-learn's copy, with a header (measurement names, spaces as underscores), a row number and the
    diagnosis as a word; the number of rows."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    target = landing / "tumours" / "tumours.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sample_id", *[n.replace(" ", "_") for n in data.feature_names], "diagnosis"])
        for i, (row, label) in enumerate(zip(data.data, data.target)):
            writer.writerow([i, *[repr(float(v)) for v in row], data.target_names[label]])
    return len(data.target)


STAGE = {"seattle_weather": stage_seattle_weather, "breast_cancer": stage_breast_cancer}


def project(name: str, where: Path) -> Path:
    """A user's project folder for dataset ``name``: its conf folder copied to ``<where>/conf`` plus a ``test``
    environment (extends local) that reuses this repository's cache of Delta's jars; the data staged into
    ``<where>/data/landing``. Returns the conf folder."""
    conf = where / "conf"
    shutil.copytree(DATASETS / name / "conf", conf)
    (conf / "test.yaml").write_text(f"extends: local\nspark:\n  jar_cache: {ROOT / '.cache' / 'jars'}\n")
    STAGE[name](where / "data" / "landing")
    return conf
