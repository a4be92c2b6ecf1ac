"""The sereca command-line interface."""
