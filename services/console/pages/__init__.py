"""The console's pages, one module per area (the same areas as the APIs)."""
