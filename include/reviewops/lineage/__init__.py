"""Lineage: the record every step returns (``record``: artifacts by URI and sha256) and
the append-only store of records under the data root (``store``)."""
