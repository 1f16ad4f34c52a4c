"""The torch network's part of the serving model (``models.serving``): its preprocessing, architecture and weights
as files, and a predictor over the feature columns (the same ``Preprocessing.encode`` and forward pass as batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa

PREPROCESSING_FILE, NET_SPEC_FILE, WEIGHTS_FILE = "preprocessing.json", "net_spec.json", "weights.pt"


def write_network(folder: Path, preprocessing: Any, net_spec: Any, state: Mapping[str, Any]) -> None:
    import torch

    (folder / PREPROCESSING_FILE).write_text(preprocessing.to_json())
    (folder / NET_SPEC_FILE).write_text(net_spec.to_json())
    torch.save(dict(state), folder / WEIGHTS_FILE)


def load_network_predictor(spec: Any, folder: Path) -> Callable[[Mapping[str, pa.Array]], np.ndarray]:
    import torch

    from lakeforge.models.network import NetSpec, Preprocessing, load_network, predict_numpy

    pre = Preprocessing.from_json((folder / PREPROCESSING_FILE).read_text())
    net = load_network(NetSpec.from_json((folder / NET_SPEC_FILE).read_text()),
                       torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    torch.set_num_threads(1)

    def predict(columns: Mapping[str, pa.Array]) -> np.ndarray:
        cats, nums = pre.encode({c: columns[c] for c in (*pre.categorical, *pre.numeric)})
        return predict_numpy(net, pre, cats, nums)

    return predict
