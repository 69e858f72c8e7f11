-- +goose Up
-- items holds the service's data: the value is the JSON body as received.
CREATE TABLE items (
    key        TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
) WITHOUT ROWID;

-- item_count keeps the number of items and its bound (see the PostgreSQL
-- migration); triggers keep it.
CREATE TABLE item_count (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL CHECK (n >= 0),
    max INTEGER NOT NULL DEFAULT 0 CHECK (max >= 0)
);
INSERT INTO item_count (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE TRIGGER items_inserted AFTER INSERT ON items BEGIN
    UPDATE item_count SET n = n + 1 WHERE id = 1;
    SELECT RAISE(ABORT, 'berth: item limit reached')
    FROM item_count WHERE id = 1 AND max > 0 AND n > max;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER items_deleted AFTER DELETE ON items BEGIN
    UPDATE item_count SET n = n - 1 WHERE id = 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER items_deleted;
DROP TRIGGER items_inserted;
DROP TABLE item_count;
DROP TABLE items;
