"""One ovsdbapp API object = one connection of its own."""
from __future__ import annotations


class OwnConnection:
    """Mix in before an ovsdbapp API class (``class Api(OwnConnection, impl_idl.OvsdbIdl)``).

    ovsdbapp keeps the connection at class level, so a second bridge or VTEP database in one
    process would reuse the first one's. This plain class attribute comes first in the MRO and
    shadows ovsdbapp's, so ``start_connection`` stores the connection on the instance."""

    ovsdb_connection = None

    def __init__(self, connection):
        super().__init__(connection, start=False)
        self.start_connection(connection)

    def stop(self) -> None:
        self.ovsdb_connection.stop(timeout=5)
