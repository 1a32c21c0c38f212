"""Each feature's Redis back end, on the store's client and key prefix: kept apart from
the prompt store's own reads and writes."""

from __future__ import annotations

from gateway.config.loader import RedisConfig
from gateway.store.annotations import Annotations, redis_annotations
from gateway.store.captures import CaptureLog, RedisCaptureLog, Settings
from gateway.store.dataset_runs import DatasetRuns
from gateway.store.datasets import Datasets
from gateway.store.datasets_redis import RedisDatasetRuns, RedisDatasets
from gateway.store.keys_redis import RedisKeyStore
from gateway.store.metering import Metering, redis_metering
from gateway.store.records import Records, RedisRecords
from gateway.store.redis_connect import RedisClient
from gateway.store.redis_keys import Keys
from gateway.store.replays import RedisReplays, ReplayStore
from gateway.store.responses import RedisResponses, ResponseStore
from gateway.store.responses import Settings as ResponsesSettings
from gateway.store.reviews_redis import RedisReviews
from gateway.store.rollout_redis import RedisRolloutStore, RedisVersionStats
from gateway.store.rollouts import RolloutStore
from gateway.store.version_counts import StatsSink


class RedisFeatures:
    _client: RedisClient
    _cfg: RedisConfig
    keys: Keys

    def capture_log(self, settings: Settings) -> CaptureLog:
        return RedisCaptureLog(self._client, self.keys.prefix, settings)

    def records(self) -> Records:
        return RedisRecords(self._client, self.keys.prefix)

    def annotations(self) -> Annotations:
        return redis_annotations(self._client, self.keys.prefix)

    def responses(self, settings: ResponsesSettings) -> ResponseStore:
        return RedisResponses(self._client, self.keys.prefix, settings)

    def rollouts(self) -> RolloutStore:
        return RedisRolloutStore(self._client, self.keys.prefix)

    def replays(self) -> ReplayStore:
        return RedisReplays(self._client, self.keys.prefix)

    def version_stats(self) -> StatsSink:
        return RedisVersionStats(self._client, self.keys.prefix)

    def datasets(self) -> Datasets:
        return RedisDatasets(self._client, self.keys.prefix)

    def dataset_runs(self) -> DatasetRuns:
        return RedisDatasetRuns(self._client, self.keys.prefix)

    def client_keys(self) -> RedisKeyStore:
        return RedisKeyStore(self._client, self._cfg)

    def metering(self) -> Metering:
        return redis_metering(self._client, self.keys.prefix)

    def reviews(self) -> RedisReviews:
        return RedisReviews(self._client, self.keys.prefix)
