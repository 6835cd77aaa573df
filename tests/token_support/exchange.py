"""RFC 8693 token exchange with an independent OAuth client library (Authlib).

Usage: exchange.py TOKEN_ENDPOINT SUBJECT_TOKEN_TYPE AUDIENCE ISSUER_ID [NAME=VALUE ...] < subject_token
(each NAME=VALUE is one more form parameter, e.g. requested_token_type=... role_arn=...)
Prints the token response as JSON on stdout; an OAuth error as {"oauth_error": ..., "description": ...}.
"""
import json
import sys

from authlib.integrations.requests_client import OAuth2Session, OAuthError

endpoint, token_type, audience, issuer_id = sys.argv[1:5]
extra = dict(arg.split("=", 1) for arg in sys.argv[5:])
subject_token = sys.stdin.read().strip()
session = OAuth2Session(client_id="claimex-test", token_endpoint_auth_method="none")
session.trust_env = False
try:
    token = session.fetch_token(
        endpoint,
        grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token=subject_token,
        subject_token_type=token_type,
        audience=audience,
        issuer_id=issuer_id,
        **extra,
    )
except OAuthError as e:
    print(json.dumps({"oauth_error": e.error, "description": e.description}))
    sys.exit(0)
print(json.dumps(dict(token)))
