"""The REST API that serves the registry's champion (FastAPI)."""
