"""The service configuration that every layer reads (``settings.config``), apart from the CLI."""
