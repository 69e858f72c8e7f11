-- +goose Up
-- Every insert and delete moved item_count's one row, and PostgreSQL holds
-- a row's lock until its transaction's commit is on disk: writes took
-- turns through each other's WAL flush instead of sharing one, so a single
-- slow flush (a busy disk) queued every writer behind it, past the
-- service's BERTH_DB_TIMEOUT. The count is now kept in 64 parts (rows 1 to
-- 64, summed); each transaction moves the part its transaction ID picks,
-- and row 1 keeps the bound (max) beside its part.
--
-- The bound stays exact. items_count_slack() is the most transactions
-- that can each hold one insert the others cannot see yet. An insert far
-- from the bound (more than twice that below it) only moves its part,
-- then reads the bound and the sum again, since it may have waited for its
-- part meanwhile: come within the slack of the bound by then, it is ended
-- with SQLSTATE 40001, and the store tries it again. An insert nearer the
-- bound, or a transaction's second insert, takes item_count's EXCLUSIVE
-- lock first: it waits for the writes in flight and keeps new ones out
-- until it commits, so the sum it reads is the count. A change of the
-- bound (a start with another BERTH_MAX_ITEMS) takes the same lock, so
-- each insert is checked against the bound it commits under.
--
-- A transaction that inserts several items, by hand, asks for that lock
-- at its second while holding its part: another such transaction, or a
-- write waiting for the same part, deadlocks with it, and PostgreSQL ends
-- one of the two (the store tries its own writes again).
LOCK TABLE items IN SHARE MODE; -- no write moves the count meanwhile
ALTER TABLE item_count DROP CONSTRAINT item_count_id_check;
ALTER TABLE item_count DROP CONSTRAINT item_count_n_check; -- a part goes below zero when its deletes outnumber its inserts
ALTER TABLE item_count ADD CONSTRAINT item_count_id_check CHECK (id BETWEEN 1 AND 64);
INSERT INTO item_count (id, n) SELECT g, 0 FROM generate_series(2, 64) AS g;

-- +goose StatementBegin
-- Sessions (max_connections), prepared transactions, background workers
-- (logical replication's among them) and WAL senders: each can hold at
-- most one insert unseen, since a transaction's second counts under the
-- lock.
CREATE FUNCTION items_count_slack() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT current_setting('max_connections')::bigint
         + current_setting('max_prepared_transactions')::bigint
         + current_setting('max_worker_processes')::bigint
         + current_setting('max_wal_senders')::bigint
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION items_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    part  int := 1 + txid_current() % 64;
    slack bigint := items_count_slack();
    bound bigint;
    total bigint;
    near  boolean := false;
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE item_count SET n = n - 1 WHERE id = part;
        RETURN NULL;
    END IF;
    SELECT max, (SELECT sum(n) FROM item_count) INTO bound, total FROM item_count WHERE id = 1;
    near := bound > 0 AND (total + 2 * slack > bound
        OR current_setting('berth.items_inserted', true) IS NOT DISTINCT FROM 'yes');
    IF near THEN
        LOCK TABLE item_count IN EXCLUSIVE MODE;
        SELECT max, (SELECT sum(n) FROM item_count) INTO bound, total FROM item_count WHERE id = 1;
        IF bound > 0 AND total >= bound THEN
            RAISE EXCEPTION 'berth: item limit of % reached', bound USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    UPDATE item_count SET n = n + 1 WHERE id = part;
    IF NOT near THEN
        -- While this insert waited for its part, writes near the bound,
        -- or a new bound, may have committed: within the slack of it, the
        -- insert must count exactly, as near ones do.
        SELECT max, (SELECT sum(n) FROM item_count) INTO bound, total FROM item_count WHERE id = 1;
        IF bound > 0 AND total - 1 + slack > bound THEN
            RAISE EXCEPTION 'berth: item count came near its bound while this insert waited; try it again' USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    PERFORM set_config('berth.items_inserted', 'yes', true);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION items_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item_count SET n = 0;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
LOCK TABLE items IN SHARE MODE;
UPDATE item_count SET n = (SELECT sum(n) FROM item_count) WHERE id = 1;
DELETE FROM item_count WHERE id > 1;
ALTER TABLE item_count DROP CONSTRAINT item_count_id_check;
ALTER TABLE item_count ADD CONSTRAINT item_count_id_check CHECK (id = 1);
ALTER TABLE item_count ADD CONSTRAINT item_count_n_check CHECK (n >= 0);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION items_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    count bigint;
    bound bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE item_count SET n = n + 1 WHERE id = 1 RETURNING n, max INTO count, bound;
        IF bound > 0 AND count > bound THEN
            RAISE EXCEPTION 'berth: item limit of % reached', bound USING ERRCODE = 'check_violation';
        END IF;
    ELSE
        UPDATE item_count SET n = n - 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION items_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item_count SET n = 0 WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP FUNCTION items_count_slack(); -- version 2's items_counted, above, does not call it
