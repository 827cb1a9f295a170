"""The `ics` application: command line and service configuration."""
