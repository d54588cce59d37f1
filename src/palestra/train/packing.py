"""Batching examples for the trainer: padded batches, or packed rows where several short
examples share one row. Packed rows carry `position_ids` that restart at 0 for each
example and no attention mask; transformers then builds a block-diagonal causal mask per
row (`find_packed_sequence_indices`), so no example attends to another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palestra.train.examples import IGNORE, Example


@dataclass(frozen=True)
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]


def pack(examples: list[Example], max_length: int) -> list[PackedRow]:
    """First-fit decreasing: fewer rows, each at most max_length tokens."""
    rows: list[list[Example]] = []
    room: list[int] = []
    for example in sorted(examples, key=lambda e: len(e.input_ids), reverse=True):
        size = len(example.input_ids)
        for index, left in enumerate(room):
            if size <= left:
                rows[index].append(example)
                room[index] -= size
                break
        else:
            rows.append([example])
            room.append(max_length - size)
    packed = []
    for members in rows:
        ids, labels, positions = [], [], []
        for example in members:
            ids += example.input_ids
            # The first token of an example is never a target: it follows another example.
            labels += [IGNORE, *example.labels[1:]]
            positions += list(range(len(example.input_ids)))
        packed.append(PackedRow(ids, labels, positions))
    return packed


class PaddedCollator:
    """Examples -> right-padded input_ids, attention_mask and labels."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, batch: list[Example]) -> dict[str, Any]:
        import torch

        width = max(len(e.input_ids) for e in batch)
        ids = [e.input_ids + [self.pad] * (width - len(e.input_ids)) for e in batch]
        mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
        labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch]
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
        }


class PackedCollator:
    """Packed rows -> [batch, longest row] tensors; each row's examples are told apart by
    their position ids. Right padding forms one more masked-out "example" per row (labels
    -100), so it never attends to or is attended by real tokens. Rows stay separate:
    flattening a batch into one long row would make attention cost grow with the square of
    the whole batch's length."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, batch: list[PackedRow]) -> dict[str, Any]:
        import torch

        width = max(len(row.input_ids) for row in batch)

        def padded(values: list[int], fill: int) -> list[int]:
            return values + [fill] * (width - len(values))

        return {
            "input_ids": torch.tensor([padded(r.input_ids, self.pad) for r in batch]),
            "labels": torch.tensor([padded(r.labels, IGNORE) for r in batch]),
            "position_ids": torch.tensor(
                [r.position_ids + list(range(width - len(r.input_ids))) for r in batch]
            ),
        }
