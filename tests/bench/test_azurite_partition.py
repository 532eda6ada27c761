"""bench/azurite_partition.py: the two layouts it compares. Unit tests, no Azurite."""

from __future__ import annotations

from bench.azurite_partition import rows


def test_one_partition_or_256() -> None:
    single = rows(600, spread=False)
    spread = rows(600, spread=True)
    assert {row["PartitionKey"] for row in single} == {"request"}
    assert len({row["PartitionKey"] for row in spread}) == 256
    assert len({row["RowKey"] for row in single + spread}) == 1200
