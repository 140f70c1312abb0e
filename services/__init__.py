"""alertyard services: router, tokens, audit and the command line."""
