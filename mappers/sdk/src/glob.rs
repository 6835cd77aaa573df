//! Patterns for claim values: GitHub's filter patterns for refs, paths and namespaces
//! ([`PathGlob`], [`PathGlobs`]), and a plain wildcard for text that is not a path
//! ([`wildcard_match`]).
//!
//! A [`PathGlob`] reads a pattern as GitHub Actions reads the `branches`, `tags` and `paths`
//! filters of a workflow ("Filter pattern cheat sheet" of GitHub's workflow syntax):
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | zero or more characters, but not `/`: `refs/tags/v*` matches `refs/tags/v1.2`, not `refs/tags/v1/x` |
//! | `**` | zero or more of any character, `/` included: `platform/**` matches `platform/a/b` |
//! | `**/` at the start or after a `/` | zero or more whole segments: `docs/**/*.md` matches `docs/a.md` and `docs/x/y/a.md` |
//! | `?` | zero or one of the preceding character or class: `*.jsx?` matches `page.js` and `page.jsx` |
//! | `+` | one or more of the preceding character or class: `v[0-9]+` matches `v1` and `v10` |
//! | `[...]` | one character listed or in a range of `a-z`, `A-Z` or `0-9`: `[CB]at`, `v[12]` |
//! | `\` | makes the next character literal: `\*`, `\?`, `\+`, `\[`, `\]`, `\!`, `\\` |
//! | anything else | itself (case-sensitive) |
//!
//! In a list ([`PathGlobs`]), a pattern that starts with `!` excludes what the patterns before
//! it included: a text matches the list when the **last** pattern that matches it is not
//! negated (`["refs/heads/**", "!refs/heads/dev/**"]`).
//!
//! A pattern is checked when it is read: an unclosed `[`, a `?` or `+` with nothing to
//! repeat, `***`, a lone `]` or a trailing `\` are refused with a message naming the pattern,
//! so a configuration holding one is refused when its issuer entry loads. Matching runs in
//! O(pattern × text), without backtracking.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// Longest pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 512;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobError {
    pattern: String,
    reason: String,
}

impl GlobError {
    fn new(pattern: &str, reason: impl Into<String>) -> GlobError {
        GlobError {
            pattern: pattern.chars().take(80).collect(),
            reason: reason.into(),
        }
    }

    /// What is wrong with the pattern.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "glob {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for GlobError {}

/// What one step of the automaton accepts.
#[derive(Debug, Clone)]
enum Test {
    Char(char),
    /// Inclusive ranges.
    Class(Box<[(char, char)]>),
    /// Any character but `/`.
    NotSlash,
    /// Any character.
    Any,
}

impl Test {
    fn accepts(&self, c: char) -> bool {
        match self {
            Test::Char(want) => *want == c,
            Test::Class(ranges) => ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi),
            Test::NotSlash => c != '/',
            Test::Any => true,
        }
    }
}

/// A node of the automaton (indices into the node list).
#[derive(Debug, Clone)]
enum Node {
    /// Consumes one character accepted by the test, then goes on at the index.
    Step(Test, u32),
    /// Goes on at both indices without consuming.
    Split(u32, u32),
    /// The whole text matched.
    Match,
}

/// How often a parsed item repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Once,
    Optional,
    OneOrMore,
    ZeroOrMore,
}

#[derive(Debug, Clone)]
enum Item {
    Test(Test, Repeat),
    /// `**/` at the start of a segment: zero or more whole segments.
    Segments,
}

/// One pattern with GitHub's filter-pattern semantics (see the [module documentation](self)).
///
/// Read it from a configuration as a field of type `PathGlob` (or [`PathGlobs`] for a
/// list): an invalid pattern then refuses the configuration when the entry loads.
#[derive(Clone)]
pub struct PathGlob {
    source: String,
    /// The text it matches when the pattern has no special character.
    literal: Option<String>,
    nodes: Box<[Node]>,
    start: u32,
}

impl PathGlob {
    /// Reads `pattern`. A leading `!` is refused here (it negates only within a
    /// [`PathGlobs`] list); write `\!` for a literal one.
    pub fn new(pattern: &str) -> Result<PathGlob, GlobError> {
        if pattern.starts_with('!') {
            return Err(GlobError::new(
                pattern,
                "a leading ! excludes only within a list of patterns, after the ones it narrows; write \\! for a literal !",
            ));
        }
        PathGlob::compile(pattern)
    }

    fn compile(pattern: &str) -> Result<PathGlob, GlobError> {
        if pattern.chars().count() > MAX_PATTERN_CHARS {
            return Err(GlobError::new(
                pattern,
                format!("longer than {MAX_PATTERN_CHARS} characters"),
            ));
        }
        let items = parse(pattern).map_err(|reason| GlobError::new(pattern, reason))?;
        let literal = items
            .iter()
            .map(|item| match item {
                Item::Test(Test::Char(c), Repeat::Once) => Some(*c),
                _ => None,
            })
            .collect::<Option<String>>();
        // Built back to front: each item's nodes lead to the start of the next.
        let mut nodes = vec![Node::Match];
        let mut next: u32 = 0;
        let push = |nodes: &mut Vec<Node>, node: Node| -> u32 {
            nodes.push(node);
            (nodes.len() - 1) as u32
        };
        for item in items.into_iter().rev() {
            next = match item {
                Item::Test(test, Repeat::Once) => push(&mut nodes, Node::Step(test, next)),
                Item::Test(test, Repeat::Optional) => {
                    let step = push(&mut nodes, Node::Step(test, next));
                    push(&mut nodes, Node::Split(step, next))
                }
                Item::Test(test, Repeat::OneOrMore) => {
                    let split = push(&mut nodes, Node::Split(0, next));
                    let step = push(&mut nodes, Node::Step(test, split));
                    nodes[split as usize] = Node::Split(step, next);
                    step
                }
                Item::Test(test, Repeat::ZeroOrMore) => {
                    let split = push(&mut nodes, Node::Split(0, next));
                    let step = push(&mut nodes, Node::Step(test, split));
                    nodes[split as usize] = Node::Split(step, next);
                    split
                }
                Item::Segments => {
                    // (.*/)? : skip, or any run of characters ending with a `/`.
                    let slash = push(&mut nodes, Node::Step(Test::Char('/'), next));
                    let split = push(&mut nodes, Node::Split(0, slash));
                    let step = push(&mut nodes, Node::Step(Test::Any, split));
                    nodes[split as usize] = Node::Split(step, slash);
                    push(&mut nodes, Node::Split(split, next))
                }
            };
        }
        Ok(PathGlob {
            source: pattern.to_owned(),
            literal,
            nodes: nodes.into_boxed_slice(),
            start: next,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        if let Some(literal) = &self.literal {
            return literal == text;
        }
        let mut current = StateSet::new(self.nodes.len());
        let mut following = StateSet::new(self.nodes.len());
        current.add(&self.nodes, self.start);
        for c in text.chars() {
            following.clear();
            for &index in &current.list {
                if let Node::Step(test, next) = &self.nodes[index as usize]
                    && test.accepts(c)
                {
                    following.add(&self.nodes, *next);
                }
            }
            if following.list.is_empty() {
                return false;
            }
            std::mem::swap(&mut current, &mut following);
        }
        current
            .list
            .iter()
            .any(|&index| matches!(self.nodes[index as usize], Node::Match))
    }
}

/// The nodes the automaton is in, with the nodes reachable from them without consuming.
struct StateSet {
    member: Vec<bool>,
    list: Vec<u32>,
    pending: Vec<u32>,
}

impl StateSet {
    fn new(size: usize) -> StateSet {
        StateSet {
            member: vec![false; size],
            list: Vec::with_capacity(size),
            pending: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &index in &self.list {
            self.member[index as usize] = false;
        }
        self.list.clear();
    }

    fn add(&mut self, nodes: &[Node], index: u32) {
        self.pending.push(index);
        while let Some(index) = self.pending.pop() {
            if std::mem::replace(&mut self.member[index as usize], true) {
                continue;
            }
            self.list.push(index);
            if let Node::Split(a, b) = nodes[index as usize] {
                self.pending.push(b);
                self.pending.push(a);
            }
        }
    }
}

impl fmt::Debug for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PathGlob").field(&self.source).finish()
    }
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &PathGlob) -> bool {
        self.source == other.source
    }
}

impl Eq for PathGlob {}

impl std::str::FromStr for PathGlob {
    type Err = GlobError;
    fn from_str(pattern: &str) -> Result<PathGlob, GlobError> {
        PathGlob::new(pattern)
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PathGlob, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        PathGlob::new(&pattern).map_err(serde::de::Error::custom)
    }
}

/// Parses a pattern (without a leading `!`) into items.
fn parse(pattern: &str) -> Result<Vec<Item>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut items: Vec<Item> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let Some(&escaped) = chars.get(i) else {
                    return Err("ends with a lone \\ (write \\\\ for a literal \\)".into());
                };
                i += 1;
                items.push(Item::Test(Test::Char(escaped), Repeat::Once));
            }
            '*' => {
                let mut stars = 1;
                while chars.get(i) == Some(&'*') {
                    stars += 1;
                    i += 1;
                }
                match stars {
                    1 => items.push(Item::Test(Test::NotSlash, Repeat::ZeroOrMore)),
                    2 => {
                        let segment_start = i == 2 || chars.get(i - 3) == Some(&'/');
                        if segment_start && chars.get(i) == Some(&'/') {
                            i += 1;
                            items.push(Item::Segments);
                        } else {
                            items.push(Item::Test(Test::Any, Repeat::ZeroOrMore));
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{} stars in a row: write * (within a segment) or ** (across segments)",
                            stars
                        ));
                    }
                }
            }
            '?' | '+' => {
                let repeat = if c == '?' {
                    Repeat::Optional
                } else {
                    Repeat::OneOrMore
                };
                match items.last_mut() {
                    Some(Item::Test(Test::Char(_) | Test::Class(_), last @ Repeat::Once)) => {
                        *last = repeat;
                    }
                    _ => {
                        return Err(format!(
                            "{c} repeats the character or [class] before it, and there is none \
                             (write \\{c} for a literal {c})"
                        ));
                    }
                }
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("[ without a closing ] (write \\[ for a literal [)")?;
                let class = parse_class(&chars[i..i + close])?;
                i += close + 1;
                items.push(Item::Test(Test::Class(class), Repeat::Once));
            }
            ']' => return Err("] without an opening [ (write \\] for a literal ])".into()),
            c => items.push(Item::Test(Test::Char(c), Repeat::Once)),
        }
    }
    Ok(items)
}

/// Reads the inside of `[...]`: letters and digits, and ranges `a-z`, `A-Z`, `0-9` of them.
fn parse_class(inside: &[char]) -> Result<Box<[(char, char)]>, String> {
    let wrong = || {
        format!(
            "[{}] may hold only letters and digits and ranges of them (a-z, A-Z, 0-9)",
            inside.iter().collect::<String>()
        )
    };
    if inside.is_empty() {
        return Err("[] is empty".into());
    }
    let same_kind = |a: char, b: char| {
        (a.is_ascii_lowercase() && b.is_ascii_lowercase())
            || (a.is_ascii_uppercase() && b.is_ascii_uppercase())
            || (a.is_ascii_digit() && b.is_ascii_digit())
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < inside.len() {
        let lo = inside[i];
        if !lo.is_ascii_alphanumeric() {
            return Err(wrong());
        }
        if inside.get(i + 1) == Some(&'-') {
            let hi = *inside.get(i + 2).ok_or_else(wrong)?;
            if !same_kind(lo, hi) || lo > hi {
                return Err(format!(
                    "[{}]: the range {lo}-{hi} is not within a-z, A-Z or 0-9, low to high",
                    inside.iter().collect::<String>()
                ));
            }
            ranges.push((lo, hi));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
    Ok(ranges.into_boxed_slice())
}

/// A list of [`PathGlob`]s, where a pattern starting with `!` excludes what the patterns
/// before it included, as in GitHub's `branches`/`paths` filters: a text matches when the
/// last pattern matching it is not negated. An empty list matches nothing (the stock
/// mappers read an empty allow-list as "no restriction" before asking it).
///
/// A list whose first pattern is negated is refused: it would exclude nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathGlobs {
    patterns: Vec<(bool, PathGlob)>,
}

impl PathGlobs {
    /// Reads the patterns in order.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<PathGlobs, GlobError> {
        let mut list = Vec::new();
        for pattern in patterns {
            let (negated, glob) = match pattern.strip_prefix('!') {
                Some(rest) => {
                    if list.is_empty() {
                        return Err(GlobError::new(
                            pattern,
                            "a list cannot start with an exclusion (!): it would exclude nothing; \
                             list what to include first, e.g. \"**\"",
                        ));
                    }
                    (
                        true,
                        PathGlob::compile(rest).map_err(|e| GlobError::new(pattern, e.reason))?,
                    )
                }
                None => (false, PathGlob::compile(pattern)?),
            };
            list.push((negated, glob));
        }
        Ok(PathGlobs { patterns: list })
    }

    /// Whether `text` matches: the last pattern matching it is not negated.
    pub fn is_match(&self, text: &str) -> bool {
        self.patterns
            .iter()
            .rev()
            .find(|(_, glob)| glob.is_match(text))
            .is_some_and(|(negated, _)| !negated)
    }

    /// Whether the list has no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// How many patterns the list has.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// The patterns as written (with their `!`).
    pub fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        self.patterns.iter().map(|(negated, glob)| {
            if *negated {
                format!("!{glob}")
            } else {
                glob.to_string()
            }
        })
    }
}

impl<'de> Deserialize<'de> for PathGlobs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PathGlobs, D::Error> {
        let patterns = Vec::<String>::deserialize(deserializer)?;
        PathGlobs::new(patterns.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// Whether `text` matches `pattern`, where `*` matches **any run of characters, `/`
/// included** (and none), `?` exactly one character, and `\` makes the next character
/// literal. For text that is not a path, where a wildcard is meant to cross `/`: an AWS ARN
/// pattern as IAM writes them (`arn:aws:iam::*:role/ci/*`). For refs, paths and namespaces
/// use [`PathGlob`], whose `*` stays within a segment. O(pattern × text).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<Token> = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index it covers to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Star) => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(Token::Any) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|tok| matches!(tok, Token::Star))
}

/// The SDK's matcher before path globs: `*` crosses `/`.
#[deprecated(
    since = "0.2.0",
    note = "its `*` crosses `/`, so `refs/tags/v*` admits `refs/tags/v1/x`: read refs, paths and \
            namespaces as `PathGlob`/`PathGlobs` (GitHub's filter patterns); keep \
            `wildcard_match` only where any run including `/` is meant"
)]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    wildcard_match(pattern, text)
}

enum Token {
    Star,
    Any,
    Char(char),
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            c => Token::Char(c),
        });
    }
    out
}

#[cfg(test)]
mod tests;
