-- +goose Up
-- items holds the service's data: the value is the JSON body as received.
CREATE TABLE items (
    key        text        PRIMARY KEY,
    value      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- item_count keeps the number of items, so the BERTH_MAX_ITEMS bound is
-- exact under concurrent writers (inserts serialise on its one row) and
-- reading the count does not scan the table.
CREATE TABLE item_count (
    id int    PRIMARY KEY CHECK (id = 1),
    n  bigint NOT NULL CHECK (n >= 0)
);
INSERT INTO item_count (id, n) VALUES (1, 0);

-- +goose Down
DROP TABLE item_count;
DROP TABLE items;
