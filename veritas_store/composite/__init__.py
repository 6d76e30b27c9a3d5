"""The composite stores: one AuditStore / BlobStore over several backends, with the routing of a
migration stage, per-backend resilience (timeouts, retries), and the repair journal."""
