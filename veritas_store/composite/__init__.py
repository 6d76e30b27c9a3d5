"""The composite stores: one AuditStore / BlobStore over several backends, with the routing of a
migration stage, per-backend resilience (timeouts, retries), and the repair journal.

``base`` holds what every composite is (its backends, capabilities, reporting, the hooks a kind
of item fills in); ``fanout`` the write path, ``reads`` the read path; ``audits`` and ``blobs``
the two composites, each both."""
