-- Run by the official image on each shard's first start: the shard's own
-- table, and the Distributed table over both (the same on every shard, so
-- that any of them takes inserts and answers queries).
CREATE TABLE IF NOT EXISTS default.logs_local
(
    timestamp DateTime,
    edge String,
    level String,
    seq UInt64,
    message String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (edge, timestamp);

CREATE TABLE IF NOT EXISTS default.logs AS default.logs_local
ENGINE = Distributed(logs_cluster, default, logs_local, rand());
