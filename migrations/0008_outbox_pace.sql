-- The pace the outbox relays of a cluster share (events.busyrate): while any API node serves
-- requests (busy_until ahead), every relay charges what it published to next_at, and waits while
-- next_at runs ahead of now, so a backlog drains at that pace instead of taking the CPU reads need.
create table outbox_pace (
  singleton   boolean primary key default true check (singleton),
  busy_until  timestamptz not null default '-infinity',
  next_at     timestamptz not null default '-infinity'
);
insert into outbox_pace default values;
