-- Webhook delivery queue: one row per (endpoint, event), written by the webhooks worker when it
-- takes an event off the bus, and worked off by per-endpoint delivery loops on every replica.
create table webhook_deliveries (
  id               bigserial primary key,
  endpoint         text collate "C" not null,
  event_id         uuid not null,
  subject          text not null,
  payload          jsonb not null,
  -- pending until a 2xx; delivered rows are kept for notifications.retention, then pruned.
  state            text not null default 'pending' check (state in ('pending', 'delivered')),
  attempts         integer not null default 0,
  -- When the row may be claimed next: after a failure, the backoff; while claimed, the lease end,
  -- so a replica that dies mid-delivery hands the row back when its lease runs out.
  next_attempt_at  timestamptz not null default now(),
  -- Set by each claim; a late answer from an expired lease cannot overwrite a newer claim.
  claim_token      uuid,
  last_error       text,
  last_status      integer,
  created_at       timestamptz not null default now(),
  delivered_at     timestamptz,
  unique (endpoint, event_id)
);
create index webhook_deliveries_due on webhook_deliveries (endpoint, next_attempt_at) where state = 'pending';
create index webhook_deliveries_delivered on webhook_deliveries (delivered_at) where state = 'delivered';

-- Every HTTP attempt, successful or not.
create table webhook_attempts (
  id          bigserial primary key,
  endpoint    text collate "C" not null,
  event_id    uuid not null,
  attempt     integer not null,
  status      integer,
  latency_ms  integer not null,
  error       text,
  created_at  timestamptz not null default now()
);
create index webhook_attempts_event on webhook_attempts (endpoint, event_id);
create index webhook_attempts_created on webhook_attempts (created_at);
-- The admin view's last error per endpoint.
create index webhook_attempts_errors on webhook_attempts (endpoint, id) where error is not null;

-- Deliveries that used up maxattempts, with their last error; `wharf webhooks redrive` moves
-- them back to webhook_deliveries.
create table webhook_dead_letters (
  id          bigserial primary key,
  endpoint    text collate "C" not null,
  event_id    uuid not null,
  subject     text not null,
  payload     jsonb not null,
  attempts    integer not null,
  last_error  text,
  last_status integer,
  created_at  timestamptz not null,
  dead_at     timestamptz not null default now(),
  unique (endpoint, event_id)
);
