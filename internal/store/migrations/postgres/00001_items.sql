-- +goose Up
-- items holds the service's data: the value is the JSON body as received.
CREATE TABLE items (
    key        text        PRIMARY KEY,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- item_count keeps the number of items, and the bound on it (0: none) that
-- the service sets at startup from BERTH_MAX_ITEMS. Triggers keep it: a
-- write is one statement, and no client holds the counter's lock across a
-- round trip, so a stalled writer cannot stall the others.
CREATE TABLE item_count (
    id  int    PRIMARY KEY CHECK (id = 1),
    n   bigint NOT NULL CHECK (n >= 0),
    max bigint NOT NULL DEFAULT 0 CHECK (max >= 0)
);
INSERT INTO item_count (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE FUNCTION items_counted() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER items_counted AFTER INSERT OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION items_counted();

-- +goose Down
DROP TRIGGER items_counted ON items;
DROP FUNCTION items_counted();
DROP TABLE item_count;
DROP TABLE items;
