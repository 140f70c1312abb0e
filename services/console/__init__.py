"""The console: server-rendered pages for people over the tokens, router and audit APIs."""
