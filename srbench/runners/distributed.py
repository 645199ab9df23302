"""Multi-GPU sharding on torch.distributed (``torchrun --nproc_per_node=N srbench-bench ...``).

Images are sharded by rank (``todo[rank::world]``). Each rank writes ``per_image.rank<r>.csv``;
rank 0 merges them into ``per_image.csv`` (in dataset order) after a barrier.
Shard files left by a killed run are merged by rank 0 before the next run starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as td

from srbench.results.seeds import row_key
from srbench.results.store import PerImageCSV, RunDir


def world_size() -> int:
    return td.get_world_size() if td.is_available() and td.is_initialized() else 1


def rank() -> int:
    return td.get_rank() if td.is_available() and td.is_initialized() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env() -> None:
    """Join the process group that torchrun describes in the environment (no-op otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or td.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    td.init_process_group(backend=backend)


def shutdown() -> None:
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        td.barrier()


def _shard_paths(run: RunDir) -> list:
    return sorted(run.path.glob("per_image.rank*.csv"))


def shard_table(run: RunDir, columns: Sequence[str], r: int) -> PerImageCSV:
    return PerImageCSV(run.path / f"per_image.rank{r}.csv", columns)


def merge_shards(run: RunDir, table: PerImageCSV, order: Sequence[str]) -> list[dict]:
    """Append rows from shard files to ``per_image.csv`` (dataset order, no duplicates), delete the
    shard files, and return the rows appended."""
    paths = _shard_paths(run)
    if not paths:
        return []
    present = table.done()
    rows = {}
    for path in paths:
        for row in PerImageCSV(path, table.columns).rows():
            if row_key(row) not in present:  # (image, seed_index): with seeds=K an image has K rows
                rows[row_key(row)] = row
    position = {n: i for i, n in enumerate(order)}
    merged = sorted(rows.values(), key=lambda r: (position.get(r["image"], len(position)), row_key(r)[1]))
    table.append(merged)
    for path in paths:
        path.unlink()
    return merged
