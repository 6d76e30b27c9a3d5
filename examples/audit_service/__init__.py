"""The example audit service: ``uvicorn examples.audit_service.app:app``."""
