"""Alembic's entry point for the arena store: runs the migrations on the connection that
`palestra.arena.schema_migrations` hands over (inside its transaction and lock)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
