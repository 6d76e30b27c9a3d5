"""Records: the values every layer passes around (audits, screenshots, events, pages), their
validation, the storage keys and the error types. Imports nothing else of the package."""
