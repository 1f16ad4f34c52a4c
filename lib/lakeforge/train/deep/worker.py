"""The training function every process runs, under Horovod or under TorchDistributor.

Both backends run the same loop; only the collective layer differs (``_Horovod``: DistributedOptimizer and
broadcasts; ``_TorchDDP``: a gloo or NCCL process group and DistributedDataParallel). Each process reads its own
share of the staged files, shuffles it per epoch with a seed shared by the run, and takes the same number of
steps as every other process (the DistributedSampler rule: one epoch is the training rows divided by
processes x batch, a short share wraps around). The learning rate is scaled by the world size.

After each epoch rank 0 writes a checkpoint (model, optimizer, early-stopping state, history) to the durable
checkpoint folder; a run started on the same folder resumes after the last completed epoch.
"""

from __future__ import annotations

import io
import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

CHECKPOINT = "epoch-{:04d}.pt"


class _Horovod:
    def __init__(self, use_gpu: bool):
        import horovod.torch as hvd

        hvd.init()
        self.hvd, self.rank, self.size = hvd, hvd.rank(), hvd.size()
        self.device = torch.device("cuda", hvd.local_rank()) if use_gpu else torch.device("cpu")
        if use_gpu:
            torch.cuda.set_device(self.device)

    def wrap(self, net, optimizer):
        self.hvd.broadcast_parameters(net.state_dict(), root_rank=0)
        self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        return net, self.hvd.DistributedOptimizer(optimizer, named_parameters=net.named_parameters())

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        return self.hvd.allreduce(tensor, op=self.hvd.Sum, name="sums").tolist()

    def gather(self, value: Any) -> list[Any]:
        return self.hvd.allgather_object(value)

    def close(self) -> None:
        self.hvd.shutdown()


class _TorchDDP:
    def __init__(self, use_gpu: bool):
        import torch.distributed as dist

        dist.init_process_group("nccl" if use_gpu else "gloo")
        self.dist, self.rank, self.size = dist, dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device("cuda", local) if use_gpu else torch.device("cpu")
        if use_gpu:
            torch.cuda.set_device(self.device)

    def wrap(self, net, optimizer):
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids), optimizer  # DDP broadcasts rank 0's weights

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(tensor, op=self.dist.ReduceOp.SUM)
        return tensor.cpu().tolist()

    def gather(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self.dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        self.dist.destroy_process_group()


def latest_checkpoint(folder: str) -> tuple[int, dict] | None:
    """(epoch, state) of the newest complete checkpoint in ``folder``, or None."""
    from pyarrow import fs

    from lakeforge.train.deep.data import filesystem_for

    filesystem, root = filesystem_for(folder)
    infos = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
    epochs = sorted(int(i.base_name[6:10]) for i in infos if i.base_name.startswith("epoch-") and i.base_name.endswith(".pt"))
    if not epochs:
        return None
    with filesystem.open_input_file(f"{root}/{CHECKPOINT.format(epochs[-1])}") as handle:
        return epochs[-1], torch.load(io.BytesIO(handle.read()), map_location="cpu", weights_only=False)


def _save_checkpoint(folder: str, epoch: int, state: dict) -> None:
    """Write then rename, so a reader never sees half a checkpoint; older checkpoints are removed after."""
    from lakeforge.train.deep.data import filesystem_for

    filesystem, root = filesystem_for(folder)
    filesystem.create_dir(root, recursive=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    final = f"{root}/{CHECKPOINT.format(epoch)}"
    with filesystem.open_output_stream(final + ".tmp") as handle:
        handle.write(buffer.getvalue())
    filesystem.move(final + ".tmp", final)
    for older in range(epoch):
        path = f"{root}/{CHECKPOINT.format(older)}"
        if filesystem.get_file_info(path).type.name == "File":
            filesystem.delete_file(path)


def _loss(raw: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, classify: bool) -> torch.Tensor:
    if classify:
        return F.binary_cross_entropy_with_logits(raw, label, weight=weight, reduction="sum")
    return (weight * (raw - label) ** 2).sum()


def run_training(spec: dict[str, Any]) -> dict[str, Any]:
    """Train on this process's share; returns (from every rank, backends keep rank 0's) the best weights,
    the per-epoch history and every rank's checksum of its final weights."""
    from lakeforge.train.deep.data import assign_files, read_share
    from lakeforge.models.network import NetSpec, Preprocessing, TabularNet

    comm = _Horovod(spec["use_gpu"]) if spec["backend"] == "horovod" else _TorchDDP(spec["use_gpu"])
    try:
        torch.manual_seed(spec["seed"])
        torch.set_num_threads(max(1, spec.get("threads_per_process", 1)))
        pre = Preprocessing.from_json(spec["preprocessing"])
        classify = pre.task == "classification"
        data = read_share(assign_files(spec["files"], comm.size)[comm.rank], pre, spec["read_batch_rows"])
        net = TabularNet(NetSpec.from_json(spec["net_spec"])).to(comm.device)
        optimizer = torch.optim.Adam(net.parameters(), lr=spec["learning_rate"] * comm.size,
                                     weight_decay=spec["weight_decay"])
        start, best, bad, history, best_state = 0, math.inf, 0, [], None
        found = latest_checkpoint(spec["checkpoint_dir"])
        if found is not None:
            done, state = found
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, best, bad, history, best_state = done + 1, state["best"], state["bad"], state["history"], state["best_state"]
        model, optimizer = comm.wrap(net, optimizer)

        fit, val = ~data["validation"], data["validation"]
        tensors = {k: torch.from_numpy(v) for k, v in data.items() if k != "validation"}
        fit_index, val_index = np.flatnonzero(fit), np.flatnonzero(val)
        batch = spec["batch_size"]
        steps = max(1, math.ceil(spec["train_rows"] / (comm.size * batch)))
        for epoch in range(start, spec["max_epochs"]):
            if bad >= spec["patience"]:
                break
            started = time.perf_counter()
            model.train()
            order = np.random.default_rng([spec["seed"], epoch, comm.rank]).permutation(fit_index)
            if len(order) == 0:
                raise RuntimeError(f"rank {comm.rank} has no training rows; stage more files than processes")
            order = np.resize(order, steps * batch)  # a short share wraps around: every rank takes ``steps`` steps
            total = 0.0
            for step in range(steps):
                index = torch.from_numpy(order[step * batch:(step + 1) * batch])
                cats, nums = tensors["cats"][index].to(comm.device), tensors["nums"][index].to(comm.device)
                label, weight = tensors["label"][index].to(comm.device), tensors["weight"][index].to(comm.device)
                optimizer.zero_grad()
                loss = _loss(model(cats, nums), label, weight, classify)
                (loss / weight.sum().clamp(min=1e-12)).backward()
                optimizer.step()
                total += loss.item()
            model.eval()
            val_loss = 0.0
            with torch.no_grad():
                for chunk in np.array_split(val_index, max(1, math.ceil(len(val_index) / 65_536))):
                    if len(chunk):
                        index = torch.from_numpy(chunk)
                        raw = model(tensors["cats"][index].to(comm.device), tensors["nums"][index].to(comm.device))
                        val_loss += float(_loss(raw, tensors["label"][index].to(comm.device),
                                                tensors["weight"][index].to(comm.device), classify))
            sums = comm.sum([total, float(steps * batch), val_loss, float(data["weight"][val_index].sum())])
            record = {"epoch": epoch, "train_loss": sums[0] / sums[1],
                      "validation_loss": sums[2] / max(sums[3], 1e-12), "seconds": time.perf_counter() - started}
            history.append(record)
            if record["validation_loss"] < best:
                best, bad = record["validation_loss"], 0
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            else:
                bad += 1
            if comm.rank == 0:
                _save_checkpoint(spec["checkpoint_dir"], epoch, {
                    "model": net.state_dict(), "optimizer": optimizer.state_dict(), "best": best, "bad": bad,
                    "history": history, "best_state": best_state})
        final = torch.cat([p.detach().cpu().flatten() for p in net.parameters()])
        checksums = comm.gather(float(final.double().sum()) + float(final.double().abs().sum()))
        return {"rank": comm.rank, "world_size": comm.size, "best_state": best_state, "history": history,
                "resumed_from": start, "checksums": checksums, "best_validation_loss": best}
    finally:
        comm.close()
