-- +goose Up
-- items holds the service's data: the value is the JSON body as received.
CREATE TABLE items (
    key        TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
) WITHOUT ROWID;
-- item_count keeps the number of items (see the Postgres migration).
CREATE TABLE item_count (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL CHECK (n >= 0)
);
INSERT INTO item_count (id, n) VALUES (1, 0);

-- +goose Down
DROP TABLE item_count;
DROP TABLE items;
