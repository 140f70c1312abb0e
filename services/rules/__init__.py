"""Team routing rules in three roles.

- :mod:`services.rules.engine`: the pure engine (model, fields, compile, reference evaluator,
  explain, lint, diff, YAML documents). No I/O; the router, the CLI and the tests import it.
- :mod:`services.rules.control`: the control plane (versioned Redis store, HTTP API,
  authorization, the live copy every router keeps).
- :mod:`services.rules.backtest`: the offline tool that replays a topic range through a
  candidate ruleset.
"""
