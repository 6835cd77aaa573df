// The claimex mapper for GitHub Actions id-tokens, in JavaScript.
//
// A line-by-line port of the Rust stock mapper (mappers/github/src/lib.rs, with the parts
// of the Rust SDK and claimex-tags it uses): same configuration and the same messages when
// `validate-config` refuses one, same checks in the same order, same deny codes and
// reasons, same `--explain` checks, same session tags, and the same output bytes (keys
// sorted, as serde_json prints them). Built into a component of the `claims-mapper` world
// (claimex:mapper@0.2.0) of mappers/wit by ../build.sh (QuickJS, componentize-qjs).
//
// Configuration (the issuer entry's `mapper_config`), every member optional but at least
// one owner list non-empty:
//
//   {
//     "allowed_owner_ids": ["65"],
//     "allowed_owners": ["octo-org"],
//     "allowed_repository_ids": ["74"],
//     "allowed_refs": ["refs/heads/main", "refs/tags/v*"],
//     "allowed_environments": ["prod"],
//     "transitive_tag_keys": ["repository"],
//     "audience": "sts.amazonaws.com"
//   }
//
// JSON is read with JSON.parse. serde_json refuses a little more than JSON.parse does
// (numbers beyond the f64 range, lone surrogates, 128 levels of nesting), and prints a
// number from what it read (u64, i64 or f64: `2`, `1.5`, `1e+21`, `18446744073709551615`)
// where a JS number has lost that: so the claims are read quickly when they need none of
// it, and read again exactly, with every number as its source text, when a claim the mapper
// prints is a number. The configuration, small, is always read exactly.

import { GlobError, PathGlobs } from "../claimex.js";

/** The claims copied into session tags, under their own names. */
const TAGGED_CLAIMS = [
  "actor",
  "event_name",
  "ref",
  "repository",
  "run_attempt",
  "run_id",
  "run_number",
  "sha",
  "workflow",
  "job_workflow_ref",
];

/** The members of the configuration, in declaration order (serde's FIELDS). */
const FIELDS = [
  "allowed_owner_ids",
  "allowed_owners",
  "allowed_repository_ids",
  "allowed_refs",
  "allowed_environments",
  "transitive_tag_keys",
  "audience",
];

/** The claim under which AWS reads session tags. */
const TAGS_CLAIM = "https://aws.amazon.com/tags";
/** Longest tag value, in characters (Unicode scalar values). */
const MAX_VALUE_CHARS = 256;
/** Every character AWS does not allow in a tag key or value: not `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. */
const DISALLOWED_CHARS = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu;
/** Characters Rust's `{:?}` escapes as `\u{..}`: not printable, or grapheme extenders. */
const RUST_ESCAPED = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}\p{Grapheme_Extend}]$/u;
/** serde_json's nesting limit: 128 levels of arrays and objects are refused. */
const MAX_DEPTH = 128;

const U64_MAX = 18446744073709551615n;
const I64_MIN_ABS = 9223372036854775808n;

// ---------------------------------------------------------------------------------------
// JSON, as serde_json reads and prints it

/** A JSON number, kept as serde_json would hold it: u64, i64 or f64. */
class JsonNumber {
  constructor(text) {
    const integer = /^-?\d+$/.test(text);
    if (integer && text[0] !== "-" && BigInt(text) <= U64_MAX) {
      this.kind = "int";
      this.text = text;
    } else if (integer && text[0] === "-" && text !== "-0" && BigInt(text.slice(1)) <= I64_MIN_ABS) {
      this.kind = "int";
      this.text = text;
    } else {
      this.kind = "float";
      this.text = formatF64(Number(text));
    }
  }
}

/** An f64 as serde_json (1.0.154, zmij) prints it: `1.0`, `0.001`, `1e+21`, `1.5e-7`, `-0.0`. */
function formatF64(x) {
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // The shortest round-trip digits, from JS's own shortest formatting.
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(Math.abs(x)));
  const fraction = m[2] || "";
  let digits = (m[1] + fraction).replace(/^0+/, "");
  let exponent = (m[3] ? Number(m[3]) : 0) - fraction.length;
  while (digits.length > 1 && digits.endsWith("0")) {
    digits = digits.slice(0, -1);
    exponent += 1;
  }
  const length = digits.length;
  const point = length + exponent; // 10^(point-1) <= |x| < 10^point
  let out;
  if (exponent >= 0 && point <= 16) {
    out = digits + "0".repeat(exponent) + ".0";
  } else if (point > 0 && point <= 16) {
    out = digits.slice(0, point) + "." + digits.slice(point);
  } else if (point > -5 && point <= 0) {
    out = "0." + "0".repeat(-point) + digits;
  } else {
    const e = point - 1;
    out = digits[0] + (length > 1 ? "." + digits.slice(1) : "") + (e < 0 ? "e-" : "e+") + Math.abs(e);
  }
  return sign + out;
}

class JsonError extends Error {}

/** A UTF-16 surrogate on its own (from a `\ud800` escape): serde_json refuses those. */
const LONE_SURROGATE = /\p{Cs}/u;
/** A surrogate escape: the only way JSON text from the host can hold a lone surrogate. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** How many times `c` occurs in `text`. */
function count(text, c) {
  let n = 0;
  for (let at = text.indexOf(c); at >= 0; at = text.indexOf(c, at + 1)) n += 1;
  return n;
}

/** Whether every number in `value` (read by JSON.parse) is finite. */
function allFinite(value) {
  if (typeof value === "number") return Number.isFinite(value);
  if (value === null || typeof value !== "object") return true;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    if (!allFinite(item)) return false;
  }
  return true;
}

/**
 * Reads JSON text, accepting exactly what serde_json accepts: refuses numbers out of the
 * f64 range, lone surrogates and 128 levels of nesting, with a JsonError. Exactly: numbers
 * become `JsonNumber`s. Quickly (`exact` false): numbers stay JS numbers, when that can be
 * done without giving up any check.
 */
function parseJson(text, exact) {
  // The costlier checks only when the text could fail them.
  const surrogates = text.includes("\\u") && SURROGATE_ESCAPE.test(text);
  const deep = count(text, "{") + count(text, "[") >= MAX_DEPTH;
  if (!exact && !surrogates && !deep) {
    let value;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined; // the exact reading below says why
    }
    if (value !== undefined && allFinite(value)) return value;
  }
  const levels = deep ? new WeakMap() : null; // array or object -> levels it spans
  try {
    return JSON.parse(text, function (key, value, context) {
      if (surrogates && LONE_SURROGATE.test(key)) throw new JsonError("lone leading surrogate in hex escape");
      if (typeof value === "number") {
        if (!Number.isFinite(value)) throw new JsonError("number out of range");
        return new JsonNumber(context.source);
      }
      if (value === null || typeof value !== "object") {
        if (surrogates && LONE_SURROGATE.test(value)) throw new JsonError("lone leading surrogate in hex escape");
        return value;
      }
      if (levels !== null) {
        // An array or an object, whose members were read before it.
        let level = 1;
        for (const item of Array.isArray(value) ? value : Object.values(value)) {
          level = Math.max(level, 1 + (levels.get(item) ?? 0));
        }
        if (level >= MAX_DEPTH) throw new JsonError("recursion limit exceeded");
        levels.set(value, level);
      }
      return value;
    });
  } catch (e) {
    if (e instanceof JsonError) throw e;
    throw new JsonError(e instanceof Error ? e.message : String(e)); // JSON.parse's SyntaxError
  }
}

/** Whether `value` (as parsed) is a JSON object. */
function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof JsonNumber);
}

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** Compares strings by code point, which is the byte order of their UTF-8 (BTreeMap's). */
function byCodePoint(a, b) {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    let x = a.charCodeAt(k);
    let y = b.charCodeAt(k);
    if (x === y) continue;
    // A surrogate stands for a code point above U+FFFF, after every other BMP character.
    if (x >= 0xd800 && x <= 0xdfff) x += 0x10000;
    if (y >= 0xd800 && y <= 0xdfff) y += 0x10000;
    return x - y;
  }
  return a.length - b.length;
}

/** The keys of a JSON object in serde_json's (BTreeMap) order. */
function sortedKeys(object) {
  return Object.keys(object).sort(byCodePoint);
}

/** Prints a value the way serde_json's `to_string` prints it (compact, keys sorted). */
function toJson(value) {
  if (value === null) return "null";
  if (typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (value instanceof JsonNumber) return value.text;
  if (Array.isArray(value)) return "[" + value.map(toJson).join(",") + "]";
  return "{" + sortedKeys(value).map((k) => JSON.stringify(k) + ":" + toJson(value[k])).join(",") + "}";
}

// ---------------------------------------------------------------------------------------
// Rust formatting, for deny reasons that read exactly as the Rust mapper's

/** A string as Rust's `{:?}` prints it. */
function rustDebug(s) {
  let out = '"';
  for (const c of s) {
    switch (c) {
      case "\0":
        out += "\\0";
        break;
      case "\t":
        out += "\\t";
        break;
      case "\r":
        out += "\\r";
        break;
      case "\n":
        out += "\\n";
        break;
      case "\\":
        out += "\\\\";
        break;
      case '"':
        out += '\\"';
        break;
      default:
        out += c !== " " && RUST_ESCAPED.test(c) ? `\\u{${c.codePointAt(0).toString(16)}}` : c;
    }
  }
  return out + '"';
}

/** How serde (through serde_json) names an unexpected value (read exactly) in an error. */
function unexpected(value) {
  if (value === null) return "null";
  if (typeof value === "boolean") return `boolean \`${value}\``;
  if (typeof value === "string") return `string ${rustDebug(value)}`;
  if (value instanceof JsonNumber) {
    return value.kind === "int" ? `integer \`${value.text}\`` : `floating point \`${value.text}\``;
  }
  if (Array.isArray(value)) return "sequence";
  return "map";
}

// ---------------------------------------------------------------------------------------
// The SDK: claims, tags (globs: PathGlobs of ../claimex.js, the SDK's PathGlobs)

/** The verified claims: their text, and what was read from it. */
class Claims {
  constructor(text) {
    this.text = text;
    this.value = parseJson(text, false);
  }

  /** The claim at `path`: a top-level name, or a dotted path into nested objects. */
  claim(path) {
    if (hasOwn(this.value, path)) return this.value[path];
    let current = this.value;
    for (const part of path.split(".")) {
      if (!isObject(current) || !hasOwn(current, part)) return undefined;
      current = current[part];
    }
    return current;
  }

  /** The claim at `path` when it is a string. */
  str(path) {
    const value = this.claim(path);
    return typeof value === "string" ? value : undefined;
  }

  /** The claim at `path` as text: strings as they are, numbers and booleans printed. */
  textClaim(path) {
    let value = this.claim(path);
    if (typeof value === "number") {
      // Read quickly: read again, with the number's source text.
      this.value = parseJson(this.text, true);
      value = this.claim(path);
    }
    if (typeof value === "string") return value;
    if (value instanceof JsonNumber) return value.text;
    if (typeof value === "boolean") return String(value);
    return undefined;
  }
}

/**
 * Free text made usable as a tag value: disallowed characters become `_`, cut to 256, and a
 * leading `aws:` (AWS's reserved prefix, any case) becomes `aws_` with its case kept.
 */
function sanitizeValue(text) {
  // Up to 256 UTF-16 units are at most 256 characters: no need to count them.
  const cut = text.length <= MAX_VALUE_CHARS ? text : Array.from(text).slice(0, MAX_VALUE_CHARS).join("");
  const clean = cut.replace(DISALLOWED_CHARS, "_");
  return /^aws:/i.test(clean) ? `${clean.slice(0, 3)}_${clean.slice(4)}` : clean;
}

// ---------------------------------------------------------------------------------------
// The configuration, read as serde reads the Rust mapper's `Config`
// (`#[serde(default, deny_unknown_fields)]`)

class ConfigError extends Error {}

function readStrings(value) {
  if (!Array.isArray(value)) throw new ConfigError(`invalid type: ${unexpected(value)}, expected a sequence`);
  return value.map((item) => {
    if (typeof item !== "string") throw new ConfigError(`invalid type: ${unexpected(item)}, expected a string`);
    return item;
  });
}

/** A list of globs, as the SDK's `PathGlobs` reads it, with the same messages. */
function readGlobs(value) {
  const patterns = readStrings(value);
  try {
    return new PathGlobs(patterns);
  } catch (e) {
    if (e instanceof GlobError) throw new ConfigError(`glob ${rustDebug(e.pattern)}: ${e.reason}`);
    throw e;
  }
}

function readField(config, field, value) {
  if (field === "allowed_refs" || field === "allowed_environments") {
    config[field] = readGlobs(value);
  } else if (field === "audience") {
    if (value !== null && typeof value !== "string") {
      throw new ConfigError(`invalid type: ${unexpected(value)}, expected a string`);
    }
    config.audience = value;
  } else {
    config[field] = readStrings(value);
  }
}

function readConfig(value) {
  const config = {
    allowed_owner_ids: [],
    allowed_owners: [],
    allowed_repository_ids: [],
    allowed_refs: new PathGlobs([]),
    allowed_environments: new PathGlobs([]),
    transitive_tag_keys: [],
    audience: null,
  };
  if (value === null) return config;
  if (isObject(value)) {
    for (const key of sortedKeys(value)) {
      if (!FIELDS.includes(key)) {
        const expected = FIELDS.map((f) => `\`${f}\``).join(", ");
        throw new ConfigError(`unknown field \`${key}\`, expected one of ${expected}`);
      }
      readField(config, key, value[key]);
    }
    return config;
  }
  if (Array.isArray(value)) {
    // serde also reads a struct from a sequence of its fields, in order.
    value.slice(0, FIELDS.length).forEach((item, k) => readField(config, FIELDS[k], item));
    if (value.length > FIELDS.length) {
      throw new ConfigError(`invalid length ${value.length}, expected fewer elements in array`);
    }
    return config;
  }
  throw new ConfigError(`invalid type: ${unexpected(value)}, expected struct Config`);
}

// ---------------------------------------------------------------------------------------
// The mapper

/** The deny codes (mappers/github/src/lib.rs `codes`, and the SDK's for `sub`). */
const OWNER_NOT_ALLOWED = "owner_not_allowed";
const REPOSITORY_NOT_ALLOWED = "repository_not_allowed";
const REF_NOT_ALLOWED = "ref_not_allowed";
const ENVIRONMENT_NOT_ALLOWED = "environment_not_allowed";
const MISSING_CLAIM = "missing_claim";
const INVALID_CLAIM = "invalid_claim";
const INVALID_SUB = "invalid_sub";
/** The characters AWS STS accepts in `sub` (the SDK's MIN_SUB_CHARS and MAX_SUB_CHARS). */
const MIN_SUB_CHARS = 6;
const MAX_SUB_CHARS = 255;

/** A refusal: the `deny` case of the WIT `decision`. */
class Deny {
  constructor(code, reason) {
    this.code = code;
    this.reason = reason;
  }
}

/**
 * The configuration as the SDK's `load_config` reads it: `null` as the defaults (the Rust
 * `Config` cannot be read from `null`, so the SDK reads `{}`), then `validate`. Throws a
 * ConfigError with the message `validate-config` returns.
 */
function loadConfig(text) {
  let value;
  try {
    value = parseJson(text, true);
  } catch (e) {
    if (e instanceof JsonError) throw new ConfigError(`the configuration is not JSON: ${e.message}`);
    throw e;
  }
  const config = readConfig(value);
  validate(config);
  return config;
}

/** The port of `validate` in mappers/github/src/lib.rs. */
function validate(config) {
  if (config.allowed_owner_ids.length === 0 && config.allowed_owners.length === 0) {
    throw new ConfigError("no owner is allowed: set allowed_owner_ids (preferred) or allowed_owners");
  }
  config.transitive_tag_keys.forEach((key, i) => {
    if (!TAGGED_CLAIMS.includes(key)) {
      throw new ConfigError(
        `transitive tag key ${rustDebug(key)} is not one of the tags (${TAGGED_CLAIMS.join(", ")})`,
      );
    }
    if (config.transitive_tag_keys.slice(0, i).includes(key)) {
      throw new ConfigError(`transitive tag key ${rustDebug(key)} is listed twice`);
    }
  });
}

/** The checks of one call: recorded only when the host asked (`explain`). */
class Checks {
  constructor(explain) {
    this.explain = explain;
    this.list = [];
  }

  /** Records a check when explaining (`detail` is called only then); returns `passed`. */
  check(name, passed, detail) {
    if (this.explain) this.list.push({ name, passed, detail: detail() });
    return passed;
  }

  /** The port of `allowed_if`: records the check, throws a Deny when it failed. */
  allowedIf(name, code, ok, what, allows) {
    if (!this.check(name, ok, () => `${what()} ${ok ? "is allowed" : "is not allowed"} (${allows()})`)) {
      throw new Deny(code, `${what()} is not allowed: ${allows()}`);
    }
  }
}

/** The port of the SDK's `allowed_by`: what a configuration list allows, for a reason. */
function allowedBy(key, values) {
  const SHOWN = 10;
  if (values.length === 0) return `mapper_config.${key} is empty`;
  const shown = values
    .slice(0, SHOWN)
    .map((v) => rustDebug(Array.from(v).slice(0, 128).join("")))
    .join(", ");
  const more = values.length > SHOWN ? ` and ${values.length - SHOWN} more` : "";
  return `mapper_config.${key} allows ${shown}${more}`;
}

/** The string claim `name`, or the SDK's `require_str` denial. */
function requireStr(claims, name) {
  const value = claims.claim(name);
  if (typeof value === "string") return value;
  if (value === undefined || value === null) {
    throw new Deny(MISSING_CLAIM, `the credential has no ${name} claim`);
  }
  throw new Deny(INVALID_CLAIM, `the credential's ${name} claim is not a string`);
}

/** The string claim `name` as the outbound `sub`, or the SDK's `require_sub` denial. */
function requireSub(claims, name) {
  const sub = requireStr(claims, name);
  const chars = Array.from(sub).length;
  if (chars < MIN_SUB_CHARS || chars > MAX_SUB_CHARS) {
    throw new Deny(
      INVALID_SUB,
      `the credential's ${name} claim has ${chars} characters: AWS accepts ${MIN_SUB_CHARS} to ${MAX_SUB_CHARS} in a sub`,
    );
  }
  return sub;
}

/**
 * Decides on one GitHub Actions token: the port of `map` in mappers/github/src/lib.rs.
 * Returns the outbound claims as JSON text; throws a Deny.
 */
function decide(claims, config, checks) {
  const ownerId = claims.textClaim("repository_owner_id");
  const owner = claims.str("repository_owner");
  const ownerOk =
    (ownerId !== undefined && config.allowed_owner_ids.includes(ownerId)) ||
    (owner !== undefined && config.allowed_owners.includes(owner));
  checks.allowedIf(
    "owner",
    OWNER_NOT_ALLOWED,
    ownerOk,
    () => `repository owner ${owner ?? "<none>"} (repository_owner_id ${ownerId ?? "<none>"})`,
    () =>
      `${allowedBy("allowed_owner_ids", config.allowed_owner_ids)}; ${allowedBy("allowed_owners", config.allowed_owners)}`,
  );

  if (config.allowed_repository_ids.length > 0) {
    const id = claims.textClaim("repository_id");
    const ok = id !== undefined && config.allowed_repository_ids.includes(id);
    checks.allowedIf(
      "repository",
      REPOSITORY_NOT_ALLOWED,
      ok,
      () => `repository ${claims.str("repository") ?? "<none>"} (repository_id ${id ?? "<none>"})`,
      () => allowedBy("allowed_repository_ids", config.allowed_repository_ids),
    );
  }

  if (!config.allowed_refs.isEmpty) {
    const gitRef = claims.str("ref") ?? "";
    const ok = config.allowed_refs.isMatch(gitRef);
    checks.allowedIf(
      "ref",
      REF_NOT_ALLOWED,
      ok,
      () => `ref ${rustDebug(gitRef)}`,
      () => allowedBy("allowed_refs", config.allowed_refs.written),
    );
  }

  if (!config.allowed_environments.isEmpty) {
    const env = claims.str("environment");
    const ok = env !== undefined && config.allowed_environments.isMatch(env);
    checks.allowedIf(
      "environment",
      ENVIRONMENT_NOT_ALLOWED,
      ok,
      () => `environment ${rustDebug(env ?? "<none>")}`,
      () => allowedBy("allowed_environments", config.allowed_environments.written),
    );
  }

  const out = { sub: requireSub(claims, "sub") };
  if (config.audience !== null) out.aud = config.audience;
  const tags = {};
  let tagged = false;
  for (const name of TAGGED_CLAIMS) {
    const value = claims.textClaim(name);
    if (value !== undefined) {
      tags[name] = [sanitizeValue(value)];
      tagged = true;
    }
  }
  // A transitive key whose claim is missing from this token is skipped with its tag.
  const transitive = config.transitive_tag_keys.filter((key) => Object.hasOwn(tags, key));
  if (tagged || transitive.length > 0) {
    out[TAGS_CLAIM] = { principal_tags: tags };
    if (transitive.length > 0) out[TAGS_CLAIM].transitive_tag_keys = transitive;
  }
  return toJson(out);
}

/**
 * The export of the `claimex:mapper/mapper@0.2.0` interface. A top-level `result<T, string>`
 * is a returned `T` or a thrown string (componentize-qjs), as the SDK's exports do.
 */
export const mapper = {
  validateConfig(config) {
    try {
      loadConfig(config);
    } catch (e) {
      if (e instanceof ConfigError) throw e.message;
      throw e;
    }
  },

  map(request) {
    let claims;
    try {
      claims = new Claims(request.claims);
    } catch (e) {
      if (e instanceof JsonError) throw `mapper could not read the claims: ${e.message}`;
      throw e;
    }
    if (!isObject(claims.value)) {
      const found = unexpected(parseJson(request.claims, true));
      throw `mapper could not read the claims: invalid type: ${found}, expected a map`;
    }
    let config;
    try {
      config = loadConfig(request.config);
    } catch (e) {
      if (e instanceof ConfigError) throw `mapper configuration is invalid: ${e.message}`;
      throw e;
    }
    const checks = new Checks(request.explain);
    let decision;
    try {
      decision = { tag: "allow", val: decide(claims, config, checks) };
    } catch (e) {
      if (!(e instanceof Deny)) throw e;
      decision = { tag: "deny", val: { code: e.code, reason: e.reason } };
    }
    return { decision, checks: checks.list };
  },
};
