// claimex.js: a small helper module for claimex mappers written in JavaScript
// (contract claimex:mapper@0.2.0, built with componentize-qjs; see README.md beside it).
//
//   import { defineMapper, Deny, Outbound, fields } from "./claimex.js";
//
//   export const mapper = defineMapper({
//     config: { allowed_owners: fields.strings(), allowed_refs: fields.globs() },
//     validate(config) {
//       if (config.allowed_owners.length === 0) return "set allowed_owners";
//     },
//     map(input, config) {
//       const owner = input.requireStr("repository_owner");
//       if (!input.check("owner", config.allowed_owners.includes(owner), () => `owner ${owner}`)) {
//         throw new Deny("owner_not_allowed", `repository owner ${owner} is not allowed`);
//       }
//       return new Outbound().sub(input.requireStr("sub")).tag("repository", input.requireStr("repository"));
//     },
//   });
//
// What it gives, each the JavaScript twin of the Rust SDK (mappers/sdk):
// - `defineMapper`: the two exports the host calls (`validateConfig`, `map`), with the
//   configuration read strictly (unknown members refused) in both, `Deny` turned into a
//   deny decision, any other exception into `err` (the host answers 500);
// - `Input`: claim readers (`claim`, `str`, `text`, `requireStr`, `requireText`, `isTrue`,
//   `requireBool`) and `check` for `claimex mapper test --explain`;
// - `Outbound`: the outbound claims and AWS session tags, values sanitized (`sanitizeValue`),
//   and `validate()`, AWS's tag rules as the host applies them;
// - `PathGlob`/`PathGlobs`: GitHub's filter patterns, as the Rust SDK's (`*` stays within a
//   path segment, `**` crosses them), with the same error messages;
// - `longestPrefix`: the value of the longest `/`-segment prefix of a path in a map.
//
// The sandbox has no clock, randomness, console or I/O: `Date.now()`, `console.log` and the
// like trap (the exchange is refused). Everything here is plain computation.

/** The contract this module speaks. */
export const CONTRACT = "claimex:mapper/mapper@0.2.0";
/** The claim under which AWS reads session tags. */
export const TAGS_CLAIM = "https://aws.amazon.com/tags";
/** Most session tags one role session may carry. */
export const MAX_TAGS = 50;
/** Longest tag key, in characters. */
export const MAX_KEY_CHARS = 128;
/** Longest tag value, in characters. */
export const MAX_VALUE_CHARS = 256;
/** Longest deny code, in characters. */
export const MAX_CODE_CHARS = 64;
/** Longest glob pattern, in characters. */
export const MAX_PATTERN_CHARS = 512;

/** The deny codes this module uses itself. */
export const codes = Object.freeze({
  MISSING_CLAIM: "missing_claim",
  INVALID_CLAIM: "invalid_claim",
  INVALID_SESSION_TAGS: "invalid_session_tags",
});

const hasOwn = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const messageOf = (e) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------
// Decisions

/**
 * A policy refusal: throw it (or return it) from `map`. The caller gets a 403 with the
 * reason; the audit line records the code (1 to 64 characters of [a-z0-9_]).
 */
export class Deny {
  constructor(code, reason) {
    this.code = code;
    this.reason = reason;
  }
  toString() {
    return `${this.reason} (${this.code})`;
  }
}

/** Whether `code` is a valid deny code: 1 to 64 characters of [a-z0-9_]. */
export function isValidCode(code) {
  return typeof code === "string" && /^[a-z0-9_]{1,64}$/.test(code);
}

// ---------------------------------------------------------------------------------------
// Session tags, as claimex-tags (mappers/tags) checks and sanitizes them

/** Every character AWS does not allow in a tag key or value: not [\p{L}\p{Z}\p{N}_.:/=+\-@]. */
const DISALLOWED = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu;
const DISALLOWED_ONE = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/u;
const hasAwsPrefix = (s) => s.slice(0, 4).toLowerCase() === "aws:";
const charCount = (s) => {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
};

/**
 * Free text (a workflow name, a branch) made a valid tag value, as claimex-tags'
 * `sanitize_value`: every character AWS does not allow becomes `_`, the text is cut to 256
 * characters, and a leading `aws:` (reserved) becomes `aws_`. A legal claim value never
 * makes an invalid tag.
 */
export function sanitizeValue(text) {
  const s = String(text);
  const cut = s.length <= MAX_VALUE_CHARS ? s : Array.from(s).slice(0, MAX_VALUE_CHARS).join("");
  const clean = cut.replace(DISALLOWED, "_");
  return hasAwsPrefix(clean) ? clean.slice(0, 3) + "_" + clean.slice(4) : clean;
}

/** Why a tag key breaks AWS's rules, or null. */
export function keyProblem(key) {
  const n = charCount(key);
  if (n === 0 || n > MAX_KEY_CHARS) return `tag key ${JSON.stringify(key)} has ${n} characters: keys need 1 to ${MAX_KEY_CHARS}`;
  const bad = DISALLOWED_ONE.exec(key);
  if (bad) return `tag key ${JSON.stringify(key)} has the character ${JSON.stringify(bad[0])}: only letters, numbers, spaces and _ . : / = + - @ are allowed`;
  if (hasAwsPrefix(key)) return `tag key ${JSON.stringify(key)} starts with the reserved prefix aws:`;
  return null;
}

/** Why the value of tag `key` breaks AWS's rules, or null. */
export function valueProblem(key, value) {
  const n = charCount(value);
  if (n > MAX_VALUE_CHARS) return `the value of tag ${JSON.stringify(key)} has ${n} characters: values may have at most ${MAX_VALUE_CHARS}`;
  const bad = DISALLOWED_ONE.exec(value);
  if (bad) return `the value of tag ${JSON.stringify(key)} has the character ${JSON.stringify(bad[0])}: only letters, numbers, spaces and _ . : / = + - @ are allowed`;
  if (hasAwsPrefix(value)) return `the value of tag ${JSON.stringify(key)} starts with the reserved prefix aws:`;
  return null;
}

/** The outbound claims, built as the Rust SDK's `Outbound`. */
export class Outbound {
  constructor() {
    this.claims = {};
    this.tags = new Map();
    this.transitive = [];
  }
  /** Sets `sub` (AWS logs it in CloudTrail; 1 to 255 characters). */
  sub(value) {
    return this.claim("sub", String(value));
  }
  /** Sets `aud`: a string, or a list of strings. */
  aud(value) {
    return this.claim("aud", value);
  }
  /** Sets any other claim (claimex owns iss, iat, nbf, exp and jti: never set those). */
  claim(name, value) {
    this.claims[name] = value;
    return this;
  }
  /** Adds a session tag; the value is sanitized (`sanitizeValue`). */
  tag(key, value) {
    this.tags.set(key, sanitizeValue(value));
    return this;
  }
  /** Adds a session tag with the value exactly as given (`validate()` then checks it). */
  tagExact(key, value) {
    this.tags.set(key, String(value));
    return this;
  }
  /** Adds a sanitized session tag and marks it transitive (kept through role chaining). */
  transitiveTag(key, value) {
    this.tag(key, value);
    this.transitive.push(key);
    return this;
  }
  /** Marks an added tag transitive. */
  makeTransitive(key) {
    this.transitive.push(key);
    return this;
  }
  /** The claims as the host receives them. */
  toClaims() {
    const out = { ...this.claims };
    if (this.tags.size > 0 || this.transitive.length > 0) {
      const principal = {};
      for (const [key, value] of this.tags) principal[key] = [value];
      out[TAGS_CLAIM] = { principal_tags: principal };
      if (this.transitive.length > 0) out[TAGS_CLAIM].transitive_tag_keys = [...this.transitive];
    }
    return out;
  }
  /**
   * Applies AWS's session-tag rules as the host does before signing; throws a Deny
   * `invalid_session_tags` naming the tag, so the refusal says what is wrong.
   */
  validate() {
    const problem = this.tagProblem();
    if (problem !== null) {
      throw new Deny(codes.INVALID_SESSION_TAGS, `the mapper built invalid session tags: ${problem}`);
    }
    return this;
  }
  /** Why the tags break AWS's rules, or null. */
  tagProblem() {
    if (this.tags.size > MAX_TAGS) return `${this.tags.size} session tags: AWS allows at most ${MAX_TAGS}`;
    const folded = new Map();
    for (const [key, value] of this.tags) {
      const problem = keyProblem(key) ?? valueProblem(key, value);
      if (problem !== null) return problem;
      const lower = key.toLowerCase();
      if (folded.has(lower)) {
        return `tag keys ${JSON.stringify(folded.get(lower))} and ${JSON.stringify(key)} are equal ignoring case: AWS tag keys are case-insensitive`;
      }
      folded.set(lower, key);
    }
    const seen = new Set();
    for (const key of this.transitive) {
      if (!this.tags.has(key)) return `transitive tag key ${JSON.stringify(key)} names no tag in principal_tags`;
      if (seen.has(key)) return `transitive tag key ${JSON.stringify(key)} is listed twice`;
      seen.add(key);
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// The input

/** What the host hands the mapper for one exchange, with claim readers. */
export class Input {
  /**
   * @param claims the verified claims (an object)
   * @param options `{subjectKind, issuerId, issuerUrl, explain}`; defaults fit native tests
   */
  constructor(claims, { subjectKind = "oidc", issuerId = "test", issuerUrl = "", explain = false } = {}) {
    this.claims = isObject(claims) ? claims : {};
    this.subjectKind = subjectKind;
    this.issuerId = issuerId;
    this.issuerUrl = issuerUrl;
    this.explain = explain;
    this.checks = [];
  }

  /** The claim at `path`: a top-level name, or a dotted path into nested objects. */
  claim(path) {
    if (hasOwn(this.claims, path)) return this.claims[path];
    let current = this.claims;
    for (const part of path.split(".")) {
      if (!isObject(current) || !hasOwn(current, part)) return undefined;
      current = current[part];
    }
    return current;
  }

  /** The claim at `path` when it is a string, else undefined. */
  str(path) {
    const value = this.claim(path);
    return typeof value === "string" ? value : undefined;
  }

  /** The claim at `path` as text: strings as they are, numbers and booleans printed. */
  text(path) {
    const value = this.claim(path);
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    return undefined;
  }

  /** Whether the claim at `path` is `true` or `"true"` (GitLab sends booleans as strings). */
  isTrue(path) {
    const value = this.claim(path);
    return value === true || value === "true";
  }

  /** The string claim at `path`, or a thrown Deny `missing_claim` / `invalid_claim`. */
  requireStr(path) {
    const value = this.claim(path);
    if (typeof value === "string") return value;
    throw claimDeny(path, value, "a string");
  }

  /** The claim at `path` as text (see `text`), or a thrown Deny. */
  requireText(path) {
    const value = this.text(path);
    if (value !== undefined) return value;
    throw claimDeny(path, this.claim(path), "a string, number or boolean");
  }

  /** The claim at `path` as a boolean (`true`, `false`, `"true"`, `"false"`), or a thrown Deny. */
  requireBool(path) {
    const value = this.claim(path);
    if (value === true || value === "true") return true;
    if (value === false || value === "false") return false;
    throw claimDeny(path, value, "a boolean");
  }

  /**
   * Records a check when the host asked for an explanation (`claimex mapper test
   * --explain`), and returns `passed`. `detail` is a function, called only then.
   */
  check(name, passed, detail) {
    if (this.explain) {
      this.checks.push({ name, passed: Boolean(passed), detail: String(typeof detail === "function" ? detail() : detail ?? "") });
    }
    return Boolean(passed);
  }
}

function claimDeny(path, found, wanted) {
  if (found === undefined || found === null) {
    return new Deny(codes.MISSING_CLAIM, `the credential has no ${path} claim`);
  }
  return new Deny(codes.INVALID_CLAIM, `the credential's ${path} claim is not ${wanted}`);
}

// ---------------------------------------------------------------------------------------
// Globs: GitHub's filter patterns, as the Rust SDK's PathGlob (mappers/sdk/src/glob.rs)

/** Why a pattern was refused: `message` is `glob "PATTERN": REASON`. */
export class GlobError extends Error {
  constructor(pattern, reason) {
    const shown = Array.from(pattern).slice(0, 80).join("");
    super(`glob ${JSON.stringify(shown)}: ${reason}`);
    this.pattern = shown;
    this.reason = reason;
  }
}

const ONCE = 0;
const OPTIONAL = 1;
const ONE_OR_MORE = 2;
const ZERO_OR_MORE = 3;
const isAlnum = (c) => /^[A-Za-z0-9]$/.test(c);
const sameKind = (a, b) => [/^[a-z]$/, /^[A-Z]$/, /^[0-9]$/].some((re) => re.test(a) && re.test(b));

function parseClass(inside) {
  const shown = inside.join("");
  if (inside.length === 0) throw "[] is empty";
  const ranges = [];
  for (let i = 0; i < inside.length; ) {
    const lo = inside[i];
    if (!isAlnum(lo)) throw `[${shown}] may hold only letters and digits and ranges of them (a-z, A-Z, 0-9)`;
    if (inside[i + 1] === "-") {
      const hi = inside[i + 2];
      if (hi === undefined) throw `[${shown}] may hold only letters and digits and ranges of them (a-z, A-Z, 0-9)`;
      if (!sameKind(lo, hi) || lo > hi) throw `[${shown}]: the range ${lo}-${hi} is not within a-z, A-Z or 0-9, low to high`;
      ranges.push([lo, hi]);
      i += 3;
    } else {
      ranges.push([lo, lo]);
      i += 1;
    }
  }
  return ranges;
}

/** Items: {test: {char}|{ranges}|"notSlash"|"any", repeat} or {segments: true}. */
function parsePattern(pattern) {
  const chars = Array.from(pattern);
  const items = [];
  for (let i = 0; i < chars.length; ) {
    const c = chars[i];
    i += 1;
    if (c === "\\") {
      if (i >= chars.length) throw "ends with a lone \\ (write \\\\ for a literal \\)";
      items.push({ test: { char: chars[i] }, repeat: ONCE });
      i += 1;
    } else if (c === "*") {
      let stars = 1;
      while (chars[i] === "*") {
        stars += 1;
        i += 1;
      }
      if (stars === 1) items.push({ test: "notSlash", repeat: ZERO_OR_MORE });
      else if (stars === 2) {
        const segmentStart = i === 2 || chars[i - 3] === "/";
        if (segmentStart && chars[i] === "/") {
          i += 1;
          items.push({ segments: true });
        } else items.push({ test: "any", repeat: ZERO_OR_MORE });
      } else throw `${stars} stars in a row: write * (within a segment) or ** (across segments)`;
    } else if (c === "?" || c === "+") {
      const last = items[items.length - 1];
      if (last === undefined || last.segments || typeof last.test === "string" || last.repeat !== ONCE) {
        throw `${c} repeats the character or [class] before it, and there is none (write \\${c} for a literal ${c})`;
      }
      last.repeat = c === "?" ? OPTIONAL : ONE_OR_MORE;
    } else if (c === "[") {
      const close = chars.indexOf("]", i);
      if (close < 0) throw "[ without a closing ] (write \\[ for a literal [)";
      items.push({ test: { ranges: parseClass(chars.slice(i, close)) }, repeat: ONCE });
      i = close + 1;
    } else if (c === "]") {
      throw "] without an opening [ (write \\] for a literal ])";
    } else {
      items.push({ test: { char: c }, repeat: ONCE });
    }
  }
  return items;
}

function accepts(test, c) {
  if (test === "any") return true;
  if (test === "notSlash") return c !== "/";
  if (test.char !== undefined) return test.char === c;
  return test.ranges.some(([lo, hi]) => lo <= c && c <= hi);
}

/** One pattern with GitHub's filter-pattern semantics (mappers/README.md, "Globs"). */
export class PathGlob {
  /** Reads `pattern`; throws a GlobError. A leading `!` is refused (lists only). */
  constructor(pattern, { allowNegation = false } = {}) {
    if (typeof pattern !== "string") throw new TypeError("a glob is a string");
    if (!allowNegation && pattern.startsWith("!")) {
      throw new GlobError(pattern, "a leading ! excludes only within a list of patterns, after the ones it narrows; write \\! for a literal !");
    }
    if (charCount(pattern) > MAX_PATTERN_CHARS) throw new GlobError(pattern, `longer than ${MAX_PATTERN_CHARS} characters`);
    let items;
    try {
      items = parsePattern(pattern);
    } catch (reason) {
      throw new GlobError(pattern, String(reason));
    }
    this.source = pattern;
    this.literal = items.every((it) => !it.segments && typeof it.test === "object" && it.test.char !== undefined && it.repeat === ONCE)
      ? items.map((it) => it.test.char).join("")
      : null;
    // An automaton, built back to front (as the Rust SDK builds it).
    const nodes = [{ match: true }];
    let next = 0;
    const push = (node) => nodes.push(node) - 1;
    for (const item of items.slice().reverse()) {
      if (item.segments) {
        const slash = push({ test: { char: "/" }, next });
        const split = push({ split: [0, slash] });
        const step = push({ test: "any", next: split });
        nodes[split].split = [step, slash];
        next = push({ split: [split, next] });
      } else if (item.repeat === ONCE) {
        next = push({ test: item.test, next });
      } else if (item.repeat === OPTIONAL) {
        const step = push({ test: item.test, next });
        next = push({ split: [step, next] });
      } else {
        const split = push({ split: [0, next] });
        const step = push({ test: item.test, next: split });
        nodes[split].split = [step, next];
        next = item.repeat === ONE_OR_MORE ? step : split;
      }
    }
    this.nodes = nodes;
    this.start = next;
  }

  /** Whether the whole of `text` matches. */
  isMatch(text) {
    if (this.literal !== null) return this.literal === text;
    const add = (set, index) => {
      const pending = [index];
      while (pending.length > 0) {
        const at = pending.pop();
        if (set.has(at)) continue;
        set.add(at);
        const node = this.nodes[at];
        if (node.split) pending.push(node.split[1], node.split[0]);
      }
    };
    let current = new Set();
    add(current, this.start);
    for (const c of text) {
      const following = new Set();
      for (const at of current) {
        const node = this.nodes[at];
        if (node.test !== undefined && accepts(node.test, c)) add(following, node.next);
      }
      if (following.size === 0) return false;
      current = following;
    }
    for (const at of current) if (this.nodes[at].match) return true;
    return false;
  }

  toString() {
    return this.source;
  }
}

/**
 * A list of globs where a pattern starting with `!` excludes what the ones before it
 * included: a text matches when the last pattern matching it is not negated. An empty
 * list matches nothing. A list starting with `!` is refused (it would exclude nothing).
 */
export class PathGlobs {
  constructor(patterns = []) {
    if (!Array.isArray(patterns)) throw new TypeError("globs are a list of strings");
    /** The patterns as written (with their `!`), for messages. */
    this.written = patterns.slice();
    this.patterns = patterns.map((pattern, k) => {
      if (typeof pattern !== "string") throw new TypeError("globs are a list of strings");
      if (!pattern.startsWith("!")) return { negated: false, glob: new PathGlob(pattern) };
      if (k === 0) {
        throw new GlobError(pattern, 'a list cannot start with an exclusion (!): it would exclude nothing; list what to include first, e.g. "**"');
      }
      try {
        return { negated: true, glob: new PathGlob(pattern.slice(1), { allowNegation: true }) };
      } catch (e) {
        throw e instanceof GlobError ? new GlobError(pattern, e.reason) : e;
      }
    });
  }
  /** Whether the list has no pattern. */
  get isEmpty() {
    return this.patterns.length === 0;
  }
  /** Whether `text` matches: the last pattern matching it is not negated. */
  isMatch(text) {
    for (let k = this.patterns.length - 1; k >= 0; k--) {
      if (this.patterns[k].glob.isMatch(text)) return !this.patterns[k].negated;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// Longest-prefix lookups

/**
 * The entry of `map` (an object or a Map of path prefix -> value) whose key is the longest
 * prefix of `path` made of whole `/`-separated segments: `platform/payments` is found for
 * `platform/payments/api` and for `platform/payments`, never for `platform/paymentsx`.
 * Returns `[key, value]`, or undefined when no key is a prefix.
 */
export function longestPrefix(map, path) {
  const get = map instanceof Map ? (k) => map.get(k) : (k) => (hasOwn(map, k) ? map[k] : undefined);
  for (let end = path.length; end > 0; end = path.lastIndexOf("/", end - 1)) {
    const key = path.slice(0, end);
    const value = get(key);
    if (value !== undefined) return [key, value];
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Configuration fields, read strictly

function field(read, initial) {
  return { read, initial };
}

/** Readers for `defineMapper({config})`: each checks the type and gives the default. */
export const fields = Object.freeze({
  /** A list of strings (default `[]`). */
  strings: () =>
    field((value, name) => {
      if (!Array.isArray(value) || !value.every((s) => typeof s === "string")) throw `${name} must be a list of strings`;
      return value;
    }, () => []),
  /** A string, `fallback` when absent (default undefined). */
  string: (fallback) =>
    field((value, name) => {
      if (typeof value !== "string") throw `${name} must be a string`;
      return value;
    }, () => fallback),
  /** A boolean (default `fallback`, else false). */
  bool: (fallback = false) =>
    field((value, name) => {
      if (typeof value !== "boolean") throw `${name} must be true or false`;
      return value;
    }, () => fallback),
  /** A list of globs, read into a PathGlobs (default: empty). */
  globs: () =>
    field((value, name) => {
      if (!Array.isArray(value) || !value.every((s) => typeof s === "string")) throw `${name} must be a list of glob strings`;
      try {
        return new PathGlobs(value);
      } catch (e) {
        throw `${name}: ${messageOf(e)}`;
      }
    }, () => new PathGlobs([])),
  /** An object of string -> string (default `{}`), e.g. for `longestPrefix`. */
  stringMap: () =>
    field((value, name) => {
      if (!isObject(value) || !Object.values(value).every((s) => typeof s === "string")) {
        throw `${name} must be an object of strings`;
      }
      return value;
    }, () => ({})),
  /** Any JSON value, unchecked (default `fallback`). */
  any: (fallback) => field((value) => value, () => fallback),
});

/**
 * Reads a configuration (JSON text; `null` for an entry without `mapper_config`) into an
 * object with every field of `spec` (a `fields.*` reader per member): absent members take
 * their defaults; an unknown member or a wrong type throws a message naming it.
 */
export function readConfig(text, spec) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw `the configuration is not JSON: ${messageOf(e)}`;
  }
  if (value === null) value = {};
  if (!isObject(value)) throw "the configuration must be a JSON object";
  const names = Object.keys(spec);
  for (const key of Object.keys(value)) {
    if (!names.includes(key)) {
      throw `unknown field \`${key}\`, expected one of ${names.map((n) => `\`${n}\``).join(", ")}`;
    }
  }
  const config = {};
  for (const name of names) {
    config[name] = hasOwn(value, name) ? spec[name].read(value[name], name) : spec[name].initial();
  }
  return config;
}

// ---------------------------------------------------------------------------------------
// The exports

/**
 * The component's exports from a mapper's parts:
 * - `config`: `{member: fields.xxx(), ...}`, read strictly in `validateConfig` and `map`;
 * - `validate(config)`: optional; return (or throw) a string to refuse the configuration
 *   when its issuer entry loads;
 * - `map(input, config)`: return an `Outbound` (or a plain claims object) to allow; throw
 *   (or return) a `Deny` to refuse; any other exception fails the call (`err`, 500).
 *
 * `export const mapper = defineMapper({...})` in the entry file.
 */
export function defineMapper({ config: spec = {}, validate = () => undefined, map }) {
  if (typeof map !== "function") throw new TypeError("defineMapper needs a map function");
  const load = (text) => {
    const config = readConfig(text, spec);
    const problem = validate(config);
    if (typeof problem === "string") throw problem;
    return config;
  };
  return {
    validateConfig(text) {
      try {
        load(text);
      } catch (e) {
        throw messageOf(e);
      }
    },
    map(request) {
      let config;
      try {
        config = load(request.config);
      } catch (e) {
        throw `mapper configuration is invalid: ${messageOf(e)}`;
      }
      let claims;
      try {
        claims = JSON.parse(request.claims);
      } catch (e) {
        throw `mapper could not read the claims: ${messageOf(e)}`;
      }
      if (!isObject(claims)) throw "mapper could not read the claims: not a JSON object";
      const input = new Input(claims, {
        subjectKind: request.subjectKind,
        issuerId: request.issuerId,
        issuerUrl: request.issuerUrl,
        explain: request.explain,
      });
      let result;
      try {
        result = map(input, config);
      } catch (e) {
        if (!(e instanceof Deny)) throw messageOf(e);
        result = e;
      }
      let decision;
      if (result instanceof Deny) {
        if (!isValidCode(result.code)) {
          throw `mapper denied with the code ${JSON.stringify(String(result.code).slice(0, 65))}, which is not 1 to 64 characters of [a-z0-9_]`;
        }
        decision = { tag: "deny", val: { code: result.code, reason: String(result.reason) } };
      } else {
        const claimsOut = result instanceof Outbound ? result.toClaims() : result;
        if (!isObject(claimsOut)) throw "map must return an Outbound, a claims object or a Deny";
        decision = { tag: "allow", val: JSON.stringify(claimsOut) };
      }
      return { decision, checks: input.explain ? input.checks : [] };
    },
  };
}
