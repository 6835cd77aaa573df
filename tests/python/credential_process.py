"""botocore reads `claimex credentials` as a credential_process (run by tests/credentials.rs).

Usage: AWS_CONFIG_FILE=<config with [profile ci] credential_process = ...> python3
credential_process.py <sts endpoint URL>. Loads profile `ci` with boto3, lets botocore run the
credential process, calls sts:GetCallerIdentity at the endpoint with the session, and prints
{"method", "Arn", "Account"} as JSON (never the credentials).
"""

import json
import sys

import boto3


def main() -> None:
    endpoint = sys.argv[1]
    session = boto3.Session(profile_name="ci")
    credentials = session.get_credentials()
    if credentials is None:
        sys.exit("botocore found no credentials for profile ci")
    frozen = credentials.get_frozen_credentials()
    if not frozen.token:
        sys.exit("the credential process gave no session token")
    sts = session.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    identity = sts.get_caller_identity()
    print(json.dumps({
        "method": credentials.method,
        "Arn": identity["Arn"],
        "Account": identity["Account"],
    }))


if __name__ == "__main__":
    main()
