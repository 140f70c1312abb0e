"""The rules control plane: versioned Redis store, HTTP API, authorization, live copies."""
