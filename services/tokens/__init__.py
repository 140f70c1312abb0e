"""The tokens service."""
