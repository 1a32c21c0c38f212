"""The back ends of limits and spend, on one store: leases of capacity and daily sums."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.leases import Leases, MemoryLeases, RedisLeases
from gateway.store.redis_connect import RedisClient
from gateway.store.spend import MemorySpendLog, RedisSpendLog, SpendLog


@dataclass(frozen=True)
class Metering:
    leases: Leases
    spend: SpendLog


def memory_metering() -> Metering:
    return Metering(MemoryLeases(), MemorySpendLog())


def redis_metering(client: RedisClient, prefix: str) -> Metering:
    return Metering(RedisLeases(client, prefix), RedisSpendLog(client, prefix))
