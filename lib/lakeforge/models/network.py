"""The tabular network (an embedding per categorical column, standardised numerics, an MLP) with the
preprocessing it was trained with, and the MLflow pyfunc that carries both, so that scoring and monitoring
feed it raw feature columns exactly like the xgboost pipeline.

Encoding works on Arrow arrays: the training processes read Parquet with pyarrow, and the pyfunc converts the
pandas frame it receives once. Index 0 of every categorical is "null, unseen or rare"; numerics are
``(x - mean) / std`` with the training split's statistics, and a null becomes 0 (the mean).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    """What the network needs to turn raw feature columns into tensors, fitted on the training split."""

    task: str
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    vocab: dict[str, list[str]]
    mean: dict[str, float]
    std: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Preprocessing":
        raw = json.loads(text)
        return cls(raw["task"], tuple(raw["categorical"]), tuple(raw["numeric"]), raw["vocab"], raw["mean"], raw["std"])

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    def encode(self, columns: Mapping[str, pa.Array | pa.ChunkedArray]) -> tuple[np.ndarray, np.ndarray]:
        """(categorical indices int64 [n, C], standardised numerics float32 [n, N]) of Arrow columns."""
        rows = len(next(iter(columns.values()))) if columns else 0
        cats = np.zeros((rows, len(self.categorical)), dtype=np.int64)
        for i, name in enumerate(self.categorical):
            values = pc.cast(columns[name], pa.string())
            index = pc.index_in(values, value_set=pa.array(self.vocab[name], pa.string()))
            cats[:, i] = pc.fill_null(index, -1).to_numpy(zero_copy_only=False) + 1
        nums = np.zeros((rows, len(self.numeric)), dtype=np.float32)
        for i, name in enumerate(self.numeric):
            values = pc.cast(columns[name], pa.float64()).to_numpy(zero_copy_only=False)
            scaled = (values - self.mean[name]) / self.std[name]
            nums[:, i] = np.where(np.isfinite(scaled), scaled, 0.0)
        return cats, nums


@dataclass(frozen=True)
class NetSpec:
    """The architecture, enough to rebuild the network before loading its weights."""

    cardinalities: tuple[int, ...]
    numeric: int
    embedding_dim: int
    hidden_units: int
    hidden_layers: int
    dropout: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NetSpec":
        raw = json.loads(text)
        return cls(**{**raw, "cardinalities": tuple(raw["cardinalities"])})


class TabularNet(nn.Module):
    """Embeddings for categoricals, concatenated with numerics, then ``hidden_layers`` x (Linear, ReLU,
    Dropout) and one output (a logit for classification, the value for regression)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, spec.embedding_dim) for n in spec.cardinalities)
        width = spec.embedding_dim * len(spec.cardinalities) + spec.numeric
        layers: list[nn.Module] = []
        for _ in range(spec.hidden_layers):
            layers += [nn.Linear(width, spec.hidden_units), nn.ReLU(), nn.Dropout(spec.dropout)]
            width = spec.hidden_units
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, cats: torch.Tensor, nums: torch.Tensor) -> torch.Tensor:
        parts = [embedding(cats[:, i]) for i, embedding in enumerate(self.embeddings)]
        return self.mlp(torch.cat([*parts, nums], dim=1)).squeeze(1)


def predict_numpy(net: TabularNet, pre: Preprocessing, cats: np.ndarray, nums: np.ndarray,
                  batch_rows: int = 65_536) -> np.ndarray:
    """P(class 1) of a classifier, the value of a regressor, in float64."""
    net.eval()
    out = np.empty(len(cats), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(cats), batch_rows):
            stop = start + batch_rows
            raw = net(torch.from_numpy(cats[start:stop]), torch.from_numpy(nums[start:stop]))
            out[start:stop] = (torch.sigmoid(raw) if pre.task == "classification" else raw).double().numpy()
    return out


def load_network(spec: NetSpec, state: Mapping[str, Any]) -> TabularNet:
    net = TabularNet(spec)
    net.load_state_dict(state)
    net.eval()
    return net


class TabularPyfunc(mlflow.pyfunc.PythonModel):
    """The logged model: raw feature columns in, P(class 1) (classification) or the value (regression) out."""

    def load_context(self, context) -> None:
        with open(context.artifacts["preprocessing"]) as handle:
            self.pre = Preprocessing.from_json(handle.read())
        with open(context.artifacts["net_spec"]) as handle:
            spec = NetSpec.from_json(handle.read())
        self.net = load_network(spec, torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        table = pa.Table.from_pandas(model_input[[*self.pre.categorical, *self.pre.numeric]], preserve_index=False)
        cats, nums = self.pre.encode({c: table.column(c) for c in table.column_names})
        return predict_numpy(self.net, self.pre, cats, nums)
