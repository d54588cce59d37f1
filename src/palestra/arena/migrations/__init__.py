"""The arena store's schema history as Alembic migrations (`versions/`), applied by
`palestra.arena.schema_migrations`. Each revision is frozen DDL: it never imports the live
table definitions, so an old store upgrades through exactly the steps it missed."""
