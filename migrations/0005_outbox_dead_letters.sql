-- An outbox row the bus refuses for good (e.g. larger than NATS's max_payload) is set aside
-- instead of being retried forever in front of every row committed after it.
alter table outbox add column dead_lettered_at timestamptz;
alter table outbox add column dead_letter_error text;
drop index outbox_unpublished;
create index outbox_unpublished on outbox (id) where published_at is null and dead_lettered_at is null;
create index outbox_dead_lettered on outbox (id) where dead_lettered_at is not null;
