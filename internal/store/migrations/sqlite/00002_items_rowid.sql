-- +goose Up
-- items becomes an ordinary (rowid) table. WITHOUT ROWID kept each row
-- whole in the key's B-tree, where SQLite advises it only for rows under a
-- twentieth of a page: with values of a kilobyte or so the file grew to
-- four or five times the data. The copy keeps every row; dropping the old
-- table drops its triggers first (so the count is untouched), and they are
-- made again on the new one.
CREATE TABLE items_rowid (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);
INSERT INTO items_rowid (key, value, updated_at) SELECT key, value, updated_at FROM items;
DROP TABLE items;
ALTER TABLE items_rowid RENAME TO items;

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
CREATE TABLE items_without_rowid (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
) WITHOUT ROWID;
INSERT INTO items_without_rowid (key, value, updated_at) SELECT key, value, updated_at FROM items;
DROP TABLE items;
ALTER TABLE items_without_rowid RENAME TO items;

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
