"""Django's PostgreSQL backend, with a connection health check that needs no round trip.

CONN_HEALTH_CHECKS makes Django check a reused connection before each
request's first query; Django's check is a `SELECT 1`, one round trip on every
request (a search makes seven). Ours asks the socket instead: an idle
connection has nothing to read unless the server closed it or is about to (a
restart, pg_terminate_backend, an idle timeout send an error, then EOF). Only
then is the `SELECT 1` run, to decide. A connection whose peer vanished
without a word looks healthy to both checks alike: the first query then fails
and Django drops the connection at the end of that request.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()
