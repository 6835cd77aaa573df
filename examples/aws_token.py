"""Get a claimex JWT for this AWS identity (Lambda, EC2/ECS role, SSO session), with botocore.

The AWS credentials never leave this process: it signs sts:GetCallerIdentity for claimex
(bound to it by the signed x-claimex-server-id header) and sends the signed request.

    python3 examples/aws_token.py https://claimex.example.com [--issuer-id aws] [--audience A]

--issuer-id may be left out when claimex has one aws-iam issuer entry. A refusal prints
claimex's error body on stderr and exits 1.

The STS endpoint is the region's, or AWS_ENDPOINT_URL_STS (tests point it at an emulator).
"""
import argparse
import base64
import json
import os
import sys
import uuid
import urllib.error
import urllib.parse
import urllib.request

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

parser = argparse.ArgumentParser(description="A claimex JWT for this AWS identity.")
parser.add_argument("url", help="claimex's public URL")
parser.add_argument("--issuer-id", help="the aws-iam issuer entry (default: the only one)")
parser.add_argument("--audience", help="the token's aud (one of the entry's output audiences)")
args = parser.parse_args()
claimex = args.url.rstrip("/")
session = botocore.session.get_session()
region = session.get_config_variable("region") or "us-east-1"
sts = os.environ.get("AWS_ENDPOINT_URL_STS", f"https://sts.{region}.amazonaws.com").rstrip("/") + "/"
request = AWSRequest(
    method="POST",
    url=sts,
    data="Action=GetCallerIdentity&Version=2011-06-15",
    headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "x-claimex-server-id": claimex,  # the entry's server_id; default: claimex's public_url
        "x-claimex-nonce": uuid.uuid4().hex,  # two requests in one second must differ
    },
)
SigV4Auth(session.get_credentials(), "sts", region).add_auth(request)
headers = [{"key": k, "value": v} for k, v in request.headers.items()]
headers.append({"key": "host", "value": urllib.parse.urlsplit(sts).netloc})
body = request.body.decode() if isinstance(request.body, bytes) else request.body
signed = {"url": sts, "method": "POST", "headers": headers, "body": body}
form = {
    "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
    "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
    "subject_token": base64.urlsafe_b64encode(json.dumps(signed).encode()).decode().rstrip("="),
}
if args.issuer_id:
    form["issuer_id"] = args.issuer_id
if args.audience:
    form["audience"] = args.audience
try:
    answer = urllib.request.urlopen(f"{claimex}/token", urllib.parse.urlencode(form).encode())
except urllib.error.HTTPError as refused:
    # claimex says why ({"error", "error_description", "reason_code"}): show it.
    sys.exit(f"claimex refused ({refused.code}): {refused.read().decode(errors='replace')}")
print(json.load(answer)["access_token"])
