"""What the benchmark scripts share: a PostgreSQL database of their own."""

from __future__ import annotations


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server at `server_url` (no database in the URL) if it is missing."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')
