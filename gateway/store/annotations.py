"""What clients and people say about served requests, on one store: feedback
(gateway.store.feedback) and the labels reviewers put on captures
(gateway.store.capture_labels)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.capture_labels import CaptureLabels, MemoryCaptureLabels, RedisCaptureLabels
from gateway.store.feedback import FeedbackLog, MemoryFeedback, RedisFeedback
from gateway.store.redis_connect import RedisClient


@dataclass(frozen=True)
class Annotations:
    feedback: FeedbackLog
    labels: CaptureLabels


def memory_annotations() -> Annotations:
    return Annotations(MemoryFeedback(), MemoryCaptureLabels())


def redis_annotations(client: RedisClient, prefix: str) -> Annotations:
    return Annotations(RedisFeedback(client, prefix), RedisCaptureLabels(client, prefix))
