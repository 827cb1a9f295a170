"""Sub-commands of the `ics` command line."""
