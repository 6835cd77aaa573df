//! Parsing and checking the rules configuration. Every error names where it is, e.g.
//! `rules[1] ("deploy"): when.ref: unknown operator "gob"`.

use claimex_mapper::tags::{MAX_TAGS, check_key, check_value};
use claimex_mapper::{Map, PathGlobs, Value};

type Result<T> = std::result::Result<T, String>;

/// The members a rule may have.
const RULE_MEMBERS: [&str; 8] = [
    "name",
    "when",
    "tags",
    "transitive_tag_keys",
    "sub",
    "aud",
    "deny",
    "code",
];
/// The operators of a condition object.
const OPERATORS: [&str; 5] = ["glob", "one_of", "exists", "contains", "not"];

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The rules, in order: the first that matches decides.
    pub rules: Vec<Rule>,
}

/// One checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The rule's name, or `rule N` (1-based) when it has none.
    pub name: String,
    /// The conditions, all of which must hold, in claim-path order.
    pub when: Vec<Check>,
    /// The session tags: `default_tags` merged with the rule's own `tags` (the rule's win).
    pub tags: Vec<TagSpec>,
    /// The tag keys to mark transitive; each is one of `tags`.
    pub transitive_tag_keys: Vec<String>,
    /// Where the outbound `sub` comes from (default: the inbound `sub` claim).
    pub sub: Source,
    /// The outbound `aud` (a string or a list of strings), when set.
    pub aud: Option<Value>,
    /// When set, a match refuses the exchange with this reason.
    pub deny: Option<String>,
    /// The deny code of a `deny` rule (`rule_denied` unless the rule sets `code`).
    pub code: String,
}

/// One condition on one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The claim path: a claim name, or a dotted path into nested objects.
    pub path: String,
    /// What the claim must satisfy.
    pub condition: Condition,
    /// The condition as written, for deny reasons.
    pub written: String,
}

/// What a claim must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Equal to this scalar (see [`crate::scalar_eq`]).
    Equals(Value),
    /// Present, as text, and matching these globs (GitHub's filter patterns: the last
    /// matching pattern decides, `!` excludes).
    Glob(PathGlobs),
    /// Equal to one of these scalars.
    OneOf(Vec<Value>),
    /// Present (not null) when `true`; absent or null when `false`.
    Exists(bool),
    /// An array holding an element equal to this scalar, or a scalar equal to it.
    Contains(Value),
    /// The inner condition does not hold.
    Not(Box<Condition>),
    /// Every one holds (a condition object with several operators).
    All(Vec<Condition>),
}

/// One session tag of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct TagSpec {
    /// The tag key.
    pub key: String,
    /// Where its value comes from.
    pub source: Source,
}

/// Where a value (a tag's, or `sub`) comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The claim at this path, as text (strings as they are, numbers and booleans printed).
    Claim(String),
    /// This literal text.
    Literal(String),
    /// A template as written, and its pieces.
    Template(String, Vec<Piece>),
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// The claim at this path, as text.
    Claim(String),
}

/// Read through [`Config::from_value`], so that every error says where it is.
impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Config, D::Error> {
        let value: Value = serde::Deserialize::deserialize(deserializer)?;
        Config::from_value(&value).map_err(<D::Error as serde::de::Error>::custom)
    }
}

impl Config {
    /// Checks a configuration. `null` and anything but an object is refused.
    pub fn from_value(value: &Value) -> Result<Config> {
        let object = match value {
            Value::Object(object) => object,
            Value::Null => {
                return Err("none is set: the rules mapper needs {\"rules\": [...]}".into());
            }
            _ => return Err("it must be a JSON object {\"rules\": [...]}".into()),
        };
        if let Some(key) = object
            .keys()
            .find(|k| !matches!(k.as_str(), "rules" | "default_tags"))
        {
            return Err(format!(
                "unknown member {key:?} (expected rules, default_tags)"
            ));
        }
        let default_tags = match object.get("default_tags") {
            None => Vec::new(),
            Some(tags) => parse_tags(tags).map_err(|e| format!("default_tags: {e}"))?,
        };
        let list = match object.get("rules") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            Some(Value::Array(_)) => {
                return Err("rules is empty, so no token could be allowed".into());
            }
            Some(_) => return Err("rules must be a list of rule objects".into()),
            None => {
                return Err("rules is missing: the rules mapper needs {\"rules\": [...]}".into());
            }
        };
        let mut rules: Vec<Rule> = Vec::with_capacity(list.len());
        for (index, rule) in list.iter().enumerate() {
            let rule = parse_rule(index, rule, &default_tags)?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(format!(
                    "rules[{index}]: the name {:?} is used by an earlier rule",
                    rule.name
                ));
            }
            rules.push(rule);
        }
        Ok(Config { rules })
    }
}

fn parse_rule(index: usize, value: &Value, defaults: &[TagSpec]) -> Result<Rule> {
    let at = format!("rules[{index}]");
    let Some(object) = value.as_object() else {
        return Err(format!("{at}: a rule must be a JSON object"));
    };
    let name = match object.get("name") {
        None => format!("rule {}", index + 1),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err(format!("{at}: name must be a non-empty string")),
    };
    let at = if object.contains_key("name") {
        format!("{at} ({name:?})")
    } else {
        at
    };
    let fail = |e: String| format!("{at}: {e}");

    if let Some(key) = object.keys().find(|k| !RULE_MEMBERS.contains(&k.as_str())) {
        return Err(fail(format!(
            "unknown member {key:?} (expected {})",
            RULE_MEMBERS.join(", ")
        )));
    }

    let when = match object.get("when") {
        Some(Value::Object(when)) => parse_when(when).map_err(fail)?,
        Some(_) => {
            return Err(fail(
                "when must be an object of CLAIM_PATH: CONDITION".into(),
            ));
        }
        None => {
            return Err(fail(
                "when is missing (write \"when\": {} for a rule that matches every token)".into(),
            ));
        }
    };

    let deny = match object.get("deny") {
        None => None,
        Some(Value::String(reason)) if !reason.is_empty() => Some(reason.clone()),
        Some(_) => return Err(fail("deny must be a non-empty string: the reason".into())),
    };
    let code = match (object.get("code"), &deny) {
        (None, _) => crate::codes::RULE_DENIED.to_owned(),
        (Some(_), None) => return Err(fail("code is only for a deny rule".into())),
        (Some(Value::String(code)), Some(_)) if claimex_mapper::is_valid_code(code) => code.clone(),
        (Some(_), Some(_)) => {
            return Err(fail(
                "code must be 1 to 64 characters of a-z, 0-9 and _".into(),
            ));
        }
    };
    if deny.is_some()
        && let Some(key) = ["tags", "transitive_tag_keys", "sub", "aud"]
            .into_iter()
            .find(|k| object.contains_key(*k))
    {
        return Err(fail(format!("a deny rule takes no {key}")));
    }

    let own_tags = match object.get("tags") {
        None => Vec::new(),
        Some(tags) => parse_tags(tags).map_err(|e| fail(format!("tags: {e}")))?,
    };
    let tags = if deny.is_some() {
        Vec::new()
    } else {
        merge_tags(defaults, own_tags)
    };
    if tags.len() > MAX_TAGS {
        return Err(fail(format!(
            "{} tags with default_tags: AWS allows at most {MAX_TAGS}",
            tags.len()
        )));
    }

    let transitive_tag_keys = match object.get("transitive_tag_keys") {
        None => Vec::new(),
        Some(keys) => parse_transitive(keys, &tags).map_err(fail)?,
    };

    let sub = match object.get("sub") {
        None => Source::Claim("sub".into()),
        Some(source) => parse_source(source).map_err(|e| fail(format!("sub: {e}")))?,
    };

    let aud = match object.get("aud") {
        None => None,
        Some(Value::String(aud)) if !aud.is_empty() => Some(Value::String(aud.clone())),
        Some(Value::Array(list))
            if !list.is_empty()
                && list
                    .iter()
                    .all(|a| a.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            Some(Value::Array(list.clone()))
        }
        Some(_) => {
            return Err(fail(
                "aud must be a non-empty string or a non-empty list of them".into(),
            ));
        }
    };

    Ok(Rule {
        name,
        when,
        tags,
        transitive_tag_keys,
        sub,
        aud,
        deny,
        code,
    })
}

fn parse_when(when: &Map<String, Value>) -> Result<Vec<Check>> {
    when.iter()
        .map(|(path, condition)| {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!("when: {path:?} is not a claim path"));
            }
            let parsed = parse_condition(condition).map_err(|e| format!("when.{path}: {e}"))?;
            Ok(Check {
                path: path.clone(),
                condition: parsed,
                written: condition.to_string(),
            })
        })
        .collect()
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn parse_condition(value: &Value) -> Result<Condition> {
    match value {
        v if is_scalar(v) => Ok(Condition::Equals(v.clone())),
        Value::Null => Err("null is not a condition (use {\"exists\": false})".into()),
        Value::Array(_) => Err("a list is not a condition (use {\"one_of\": [...]})".into()),
        Value::Object(ops) if ops.is_empty() => Err(format!(
            "an empty object is not a condition (operators: {})",
            OPERATORS.join(", ")
        )),
        Value::Object(ops) => {
            let mut all = ops
                .iter()
                .map(|(op, arg)| parse_operator(op, arg))
                .collect::<Result<Vec<_>>>()?;
            Ok(if all.len() == 1 {
                all.remove(0)
            } else {
                Condition::All(all)
            })
        }
        _ => unreachable!("every JSON value is handled above"),
    }
}

fn parse_operator(op: &str, arg: &Value) -> Result<Condition> {
    match op {
        "glob" => {
            let patterns: Vec<&str> = match arg {
                Value::String(glob) => vec![glob.as_str()],
                Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_string) => {
                    list.iter().filter_map(Value::as_str).collect()
                }
                _ => return Err("glob takes a string or a non-empty list of strings".into()),
            };
            PathGlobs::new(patterns)
                .map(Condition::Glob)
                .map_err(|e| e.to_string())
        }
        "one_of" => match arg {
            Value::Array(list) if !list.is_empty() && list.iter().all(is_scalar) => {
                Ok(Condition::OneOf(list.clone()))
            }
            _ => Err("one_of takes a non-empty list of strings, numbers or booleans".into()),
        },
        "exists" => match arg {
            Value::Bool(b) => Ok(Condition::Exists(*b)),
            _ => Err("exists takes true or false".into()),
        },
        "contains" => match arg {
            v if is_scalar(v) => Ok(Condition::Contains(v.clone())),
            _ => Err("contains takes a string, number or boolean".into()),
        },
        "not" => Ok(Condition::Not(Box::new(
            parse_condition(arg).map_err(|e| format!("not: {e}"))?,
        ))),
        _ => Err(format!(
            "unknown operator {op:?} (operators: {})",
            OPERATORS.join(", ")
        )),
    }
}

/// Parses `tags`: a list of claim paths (each its own key) or an object `KEY: SOURCE`.
fn parse_tags(value: &Value) -> Result<Vec<TagSpec>> {
    let specs: Vec<TagSpec> = match value {
        Value::Array(list) => list
            .iter()
            .map(|item| match item {
                Value::String(path) if !path.is_empty() => Ok(TagSpec {
                    key: path.clone(),
                    source: Source::Claim(path.clone()),
                }),
                _ => Err("a tags list holds claim paths (non-empty strings)".to_string()),
            })
            .collect::<Result<_>>()?,
        Value::Object(map) => map
            .iter()
            .map(|(key, source)| {
                Ok(TagSpec {
                    key: key.clone(),
                    source: parse_source(source).map_err(|e| format!("{key}: {e}"))?,
                })
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(
                "tags must be a list of claim paths or an object of TAG_KEY: SOURCE".into(),
            );
        }
    };
    if specs.len() > MAX_TAGS {
        return Err(format!(
            "{} tags: AWS allows at most {MAX_TAGS}",
            specs.len()
        ));
    }
    for (i, spec) in specs.iter().enumerate() {
        check_key(&spec.key).map_err(|e| e.to_string())?;
        if let Source::Literal(text) = &spec.source {
            check_value(&spec.key, text).map_err(|e| e.to_string())?;
        }
        let lower = spec.key.to_lowercase();
        if let Some(first) = specs[..i].iter().find(|s| s.key.to_lowercase() == lower) {
            return Err(format!(
                "tag keys {:?} and {:?} are equal ignoring case: AWS tag keys are case-insensitive",
                first.key, spec.key
            ));
        }
    }
    Ok(specs)
}

/// The defaults, with each replaced by the rule's tag of the same key ignoring case, then
/// the rule's other tags.
fn merge_tags(defaults: &[TagSpec], own: Vec<TagSpec>) -> Vec<TagSpec> {
    let mut tags: Vec<TagSpec> = defaults
        .iter()
        .filter(|d| {
            let lower = d.key.to_lowercase();
            !own.iter().any(|o| o.key.to_lowercase() == lower)
        })
        .cloned()
        .collect();
    tags.extend(own);
    tags
}

fn parse_transitive(value: &Value, tags: &[TagSpec]) -> Result<Vec<String>> {
    let Some(list) = value.as_array() else {
        return Err("transitive_tag_keys must be a list of tag keys".into());
    };
    let mut keys: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let Some(key) = item.as_str() else {
            return Err("transitive_tag_keys must be a list of tag keys".into());
        };
        if !tags.iter().any(|t| t.key == key) {
            return Err(format!(
                "transitive tag key {key:?} is not one of the rule's tags or default_tags"
            ));
        }
        if keys.iter().any(|k| k == key) {
            return Err(format!("transitive tag key {key:?} is listed twice"));
        }
        keys.push(key.to_owned());
    }
    Ok(keys)
}

/// Parses a source: `"claim.path"`, `{"claim": PATH}`, `{"value": TEXT}` or
/// `{"template": "...{claim.path}..."}`.
fn parse_source(value: &Value) -> Result<Source> {
    const EXPECTED: &str = "expected a claim path, {\"claim\": PATH}, {\"value\": TEXT} or {\"template\": \"..{PATH}..\"}";
    match value {
        Value::String(path) if !path.is_empty() => Ok(Source::Claim(path.clone())),
        Value::Object(object) if object.len() == 1 => {
            let (kind, arg) = object.iter().next().expect("one member");
            match (kind.as_str(), arg) {
                ("claim", Value::String(path)) if !path.is_empty() => {
                    Ok(Source::Claim(path.clone()))
                }
                ("value", Value::String(text)) => Ok(Source::Literal(text.clone())),
                ("template", Value::String(template)) => Ok(Source::Template(
                    template.clone(),
                    parse_template(template)?,
                )),
                _ => Err(EXPECTED.into()),
            }
        }
        _ => Err(EXPECTED.into()),
    }
}

/// Splits a template into text and `{claim.path}` pieces; `{{` and `}}` are literal braces.
fn parse_template(template: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut path = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!(
                                "template {template:?} has an unclosed {{ (write {{{{ for a literal brace)"
                            ));
                        }
                        Some(c) => path.push(c),
                    }
                }
                if path.is_empty() {
                    return Err(format!("template {template:?} has an empty {{}}"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Claim(path));
            }
            '}' => {
                return Err(format!(
                    "template {template:?} has a lone }} (write }}}} for a literal brace)"
                ));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}
