-- A blob fill names the storage object it writes before the object exists, so that a fill whose
-- node died mid-blob (its heartbeat stopped) leaves nothing behind: whoever takes the fill over,
-- or the gc worker's sweep of abandoned fills, queues that object for deletion (docs/proxy.md).
alter table proxy_blob_fills
  add column storage_key    text,
  add column storage_state  jsonb not null default '{}'::jsonb;
create index proxy_blob_fills_heartbeat on proxy_blob_fills (heartbeat_at);
