-- +goose Up
-- TRUNCATE fires no row triggers, so emptying items by hand (an operator
-- starting over) left item_count at its old number, and new items were
-- refused as past the bound while the table was empty. A statement-level
-- trigger sets the count back to zero.
-- +goose StatementBegin
CREATE FUNCTION items_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE item_count SET n = 0 WHERE id = 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER items_truncated AFTER TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION items_truncated();

-- +goose Down
DROP TRIGGER items_truncated ON items;
DROP FUNCTION items_truncated();
