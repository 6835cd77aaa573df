//! Glob matching for claim values such as `refs/heads/release/*`.

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including
/// `/` and none at all), `?` matches exactly one character, and `\` makes the next
/// character literal. Everything else matches itself. Runs in O(len(pattern)·len(text)).
pub fn glob_match(pattern: &str, text: &str) -> bool {
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
mod tests {
    use super::glob_match;

    #[test]
    fn matches() {
        assert!(glob_match("refs/heads/release/*", "refs/heads/release/1.2"));
        assert!(glob_match("refs/heads/release/*", "refs/heads/release/"));
        assert!(glob_match("refs/tags/v?.*", "refs/tags/v1.0"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(glob_match("exact", "exact"));
        assert!(glob_match(r"lit\*", "lit*"));
    }

    #[test]
    fn does_not_match() {
        assert!(!glob_match("refs/heads/release/*", "refs/heads/main"));
        assert!(!glob_match("refs/tags/v?", "refs/tags/v10"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match(r"lit\*", "litx"));
        assert!(!glob_match("exact", "exact "));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(10_000);
        assert!(!glob_match("*a*a*a*a*a*a*b", &text));
    }
}
