-- Delivery latency (src/delivery/latency.ts): for each direction, how long events took from the
-- bridge's receipt to the upstream's acceptance, as a histogram per 5-minute bucket. A row per
-- bucket, direction and bin (`ge_ms`, the bin's lower bound in ms; fixed bins from 100 ms to 48 h),
-- never a row per event; written with the counters, pruned with them.
CREATE TABLE latency (
  bucket TEXT NOT NULL,
  direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  ge_ms INTEGER NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (bucket, direction, ge_ms)
) WITHOUT ROWID;
