"""Alembic migrations of the SQL store, run by ``SQLStore.migrate()``."""
