-- The counters' time column holds the start of a 5-minute bucket, not an hour: it is named for
-- what it holds, as the latency table's is. Reads still sum buckets to hours.
ALTER TABLE counters RENAME COLUMN hour TO bucket;
