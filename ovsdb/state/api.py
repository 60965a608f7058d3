"""Abstract API of the vpcnet state database (the ovsdbapp triad: api / commands / impl_idl).

Every method returns a Command; nothing runs until the command is executed or added to a
transaction (`with api.transaction(check_error=True) as txn: txn.add(...)`).
"""
from __future__ import annotations

import abc

from ovsdbapp import api


class API(api.API, metaclass=abc.ABCMeta):
    @abc.abstractmethod
    def upsert_object(self, table: str, namespace: str, name: str, columns: dict):
        """Create the row (namespace, name) in `table` or update its columns.

        Result: "created", "configured" or "unchanged". `generation` is bumped when `spec` changes.
        """

    @abc.abstractmethod
    def delete_object(self, table: str, namespace: str, name: str, if_exists: bool = True):
        """Delete the row. Result: True if a row was deleted."""

    @abc.abstractmethod
    def get_object(self, table: str, namespace: str, name: str):
        """Result: a RowView of the row, or None."""

    @abc.abstractmethod
    def list_objects(self, table: str, namespace: str | None = None):
        """Result: RowViews of the rows (of one namespace if given), sorted by (namespace, name)."""

    @abc.abstractmethod
    def request_slices(self, table: str, keys):
        """Start monitoring rows of a sliced table whose slice column is in `keys` (None = all).

        Result: the IDL condition seqno to wait for (or None when nothing new was asked).
        """
