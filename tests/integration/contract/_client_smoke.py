# mypy: ignore-errors
# (the generated packages exist only in the temp dir this script is given)
"""Run by test_generated_client.py inside openapi-python-client's own environment (it pins
typer<0.28, which the project's lock cannot hold): drives the generated clients.

Arguments: <dir with tokens_client/ and router_client/> <tokens url> <router url> <token> <team>
"""

from __future__ import annotations

import sys

sys.path.insert(0, sys.argv[1])

from router_client import AuthenticatedClient as RouterClient
from router_client.api.rules import apply_ruleset, explain_alert
from router_client.models import (
    ChangeReport,
    ExplainRequest,
    Explanation,
    RulesetDocument,
)
from tokens_client import AuthenticatedClient as TokensClient
from tokens_client.api.tokens import create_token, list_tokens, revoke_token
from tokens_client.models import Error, TeamTokenCreate, TokenRead, TokenSecret

_, _, tokens_url, router_url, token, team = sys.argv

tokens = TokensClient(base_url=tokens_url, token=token)
created = create_token.sync(
    client=tokens, body=TeamTokenCreate.from_dict({"kind": "team", "name": "gen", "team": team})
)
assert isinstance(created, TokenSecret), created
listed = list_tokens.sync(client=tokens)
assert isinstance(listed, list)
assert created.token.id in {t.id for t in listed}
revoked = revoke_token.sync(created.token.id, client=tokens)
assert isinstance(revoked, TokenRead), revoked
assert revoked.status.value == "revoked", revoked
missing = revoke_token.sync("tok_0000000000000000", client=tokens)
assert isinstance(missing, Error), missing  # errors are typed
assert missing.code == "not_found", missing

router = RouterClient(base_url=router_url, token=token)
rule = {
    "name": "generated-client",
    "owner_team": team,
    "destinations": [team],
    "condition_groups": [
        {"conditions": [{"field": "service", "operator": "is_one_of", "values": ["gen"]}]}
    ],
}
applied = apply_ruleset.sync(client=router, body=RulesetDocument.from_dict({"rules": [rule]}))
assert isinstance(applied, ChangeReport), applied
assert applied.applied, applied
# A member's rule is a team rule: it sees alerts its team's tokens publish.
source = {"token_id": created.token.id, "team": team}
request = {"alert": {"service": "gen", "severity": "error"}, "source": source}
explained = explain_alert.sync(client=router, body=ExplainRequest.from_dict(request))
assert isinstance(explained, Explanation), explained
assert explained.teams == [team], explained.teams
print("generated clients: token create/list/revoke and rules apply/explain ok")
