use super::*;

fn glob(pattern: &str) -> PathGlob {
    PathGlob::new(pattern).unwrap_or_else(|e| panic!("{e}"))
}

fn globs(patterns: &[&str]) -> PathGlobs {
    PathGlobs::new(patterns.iter().copied()).unwrap_or_else(|e| panic!("{e}"))
}

/// Each row: a pattern, texts it matches, texts it does not.
fn table(rows: &[(&str, &[&str], &[&str])]) {
    for (pattern, yes, no) in rows {
        let g = glob(pattern);
        for text in *yes {
            assert!(g.is_match(text), "{pattern:?} should match {text:?}");
        }
        for text in *no {
            assert!(!g.is_match(text), "{pattern:?} should not match {text:?}");
        }
    }
}

/// GitHub's "Filter pattern cheat sheet", "Patterns to match branches and tags": every
/// documented example, and the names the documentation says a pattern leaves out.
#[test]
fn github_branch_and_tag_examples() {
    table(&[
        (
            "feature/*",
            &["feature/my-branch", "feature/your-branch"],
            &["feature/beta-a/my-branch", "feature"],
        ),
        (
            "feature/**",
            &[
                "feature/beta-a/my-branch",
                "feature/your-branch",
                "feature/mona/the/octocat",
            ],
            &["features/x", "feature"],
        ),
        ("main", &["main"], &["main2", "mai", "refs/heads/main"]),
        (
            "releases/mona-the-octocat",
            &["releases/mona-the-octocat"],
            &["releases/mona"],
        ),
        (
            "*",
            &["main", "releases"],
            &["all/the/branches", "every/tag"],
        ),
        ("**", &["all/the/branches", "every/tag", "main", ""], &[]),
        (
            "*feature",
            &["mona-feature", "feature", "ver-10-feature"],
            &["feature-x", "a/feature"],
        ),
        ("v2*", &["v2", "v2.0", "v2.9"], &["v1", "v2/x"]),
        (
            "v[12].[0-9]+.[0-9]+",
            &["v1.10.1", "v2.0.0"],
            &["v3.0.0", "v1.x.1", "v1..1", "v1.10.1a"],
        ),
        // The cheat sheet's own examples of each special character.
        ("Octo*", &["Octocat"], &["Octo/cat"]),
        ("[CB]at", &["Cat", "Bat"], &["cat", "Rat", "CBat"]),
        ("[1-2]00", &["100", "200"], &["300", "00"]),
    ]);
}

/// GitHub's "Patterns to match file paths": every documented example.
#[test]
fn github_path_examples() {
    table(&[
        ("*", &["README.md", "server.rb"], &["docs/README.md"]),
        (
            "*.jsx?",
            &["page.js", "page.jsx"],
            &["page.jsz", "page.jsxx", "a/page.js"],
        ),
        ("**", &["all/the/files.md"], &[]),
        ("*.js", &["app.js", "index.js"], &["js/index.js", "app.jsx"]),
        (
            "**.js",
            &["index.js", "js/index.js", "src/js/app.js"],
            &["index.ts"],
        ),
        (
            "docs/*",
            &["docs/README.md", "docs/file.txt"],
            &["docs/mona/octocat.txt"],
        ),
        (
            "docs/**",
            &["docs/README.md", "docs/mona/octocat.txt"],
            &["doc/x", "docs"],
        ),
        (
            "docs/**/*.md",
            &[
                "docs/README.md",
                "docs/mona/hello-world.md",
                "docs/a/markdown/file.md",
            ],
            &["docs/a/file.txt", "README.md"],
        ),
        (
            "**/docs/**",
            &[
                "docs/hello.md",
                "dir/docs/my-file.txt",
                "space/docs/plan/space.doc",
            ],
            &["dir/doc/x", "mydocs/x"],
        ),
        (
            "**/README.md",
            &["README.md", "js/README.md"],
            &["js/README.js", "xREADME.md"],
        ),
        (
            "**/*src/**",
            &["a/src/app.js", "my-src/code/js/app.js"],
            &["a/source/app.js"],
        ),
        (
            "**/*-post.md",
            &["my-post.md", "path/their-post.md"],
            &["post.md"],
        ),
        (
            "**/migrate-*.sql",
            &[
                "migrate-10909.sql",
                "db/migrate-v1.0.sql",
                "db/sept/migrate-v1.sql",
            ],
            &["db/migrate/x.sql"],
        ),
    ]);
}

/// GitHub's examples of negative patterns: the last matching pattern decides.
#[test]
fn github_negation_examples() {
    let md = globs(&["*.md", "!README.md"]);
    assert!(md.is_match("hello.md"));
    assert!(!md.is_match("README.md"));
    assert!(!md.is_match("docs/hello.md"));
    let again = globs(&["*.md", "!README.md", "README*"]);
    for text in ["hello.md", "README.md", "README.doc"] {
        assert!(again.is_match(text), "{text}");
    }
    let branches = globs(&["releases/**", "!releases/**-alpha"]);
    assert!(branches.is_match("releases/10"));
    assert!(branches.is_match("releases/beta/mona"));
    assert!(!branches.is_match("releases/10-alpha"));
    assert!(!branches.is_match("releases/beta/3-alpha"));
    assert!(!branches.is_match("main"));
}

/// What the old matcher let through and the path glob does not.
#[test]
fn star_stays_within_a_segment() {
    table(&[
        (
            "platform/*",
            &["platform/payments"],
            &["platform/payments/internal", "platform"],
        ),
        (
            "platform/**",
            &["platform/payments", "platform/payments/internal"],
            &["platform", "platformx/a"],
        ),
        (
            "refs/tags/v*",
            &["refs/tags/v1.2.0", "refs/tags/v"],
            &["refs/tags/v1/anything"],
        ),
        (
            "refs/heads/*",
            &["refs/heads/main"],
            &["refs/heads/release/1.0"],
        ),
        (
            "refs/*/main",
            &["refs/heads/main", "refs/tags/main"],
            &["refs/a/b/main"],
        ),
        (
            "**/main",
            &["main", "refs/heads/main"],
            &["refs/heads/xmain"],
        ),
        ("a**b", &["ab", "a/b", "ax/yb"], &["a/c"]),
    ]);
}

#[test]
fn escapes_and_literals() {
    table(&[
        (r"refs/heads/\*", &["refs/heads/*"], &["refs/heads/main"]),
        (r"v1\+build", &["v1+build"], &["v11build", "v1build"]),
        (r"what\?", &["what?"], &["what", "wha"]),
        (r"\[x\]", &["[x]"], &["x"]),
        (r"\!x", &["!x"], &["x"]),
        (r"a\\b", &[r"a\b"], &["ab"]),
        ("no!special", &["no!special"], &[]),
        ("", &[""], &["x"]),
        ("ümlaut/é*", &["ümlaut/éa"], &["umlaut/ea"]),
    ]);
    assert!(glob("plain/ref").literal.is_some());
    assert!(glob(r"lit\*").literal.is_some());
    assert!(glob("a*").literal.is_none());
}

#[test]
fn quantifiers_repeat_the_character_or_class_before_them() {
    table(&[
        ("colou?r", &["color", "colour"], &["colouur", "colr"]),
        ("go+d", &["god", "good", "goooood"], &["gd"]),
        ("v[0-9]+", &["v1", "v10", "v2024"], &["v", "v1a"]),
        ("[a-z]?x", &["x", "ax"], &["abx", "Ax"]),
    ]);
}

#[test]
fn invalid_patterns_are_refused_with_a_reason() {
    for (pattern, reason) in [
        ("refs/[heads", "[ without a closing ]"),
        ("refs/heads]", "] without an opening ["),
        ("[]", "[] is empty"),
        ("[a-]", "may hold only letters and digits"),
        ("[_]", "may hold only letters and digits"),
        ("[z-a]", "the range z-a"),
        ("[a-Z]", "the range a-Z"),
        ("?", "? repeats the character or [class] before it"),
        ("*?", "? repeats"),
        ("**+", "+ repeats"),
        ("a+?", "? repeats"),
        ("a++", "+ repeats"),
        ("***", "3 stars in a row"),
        ("trailing\\", "ends with a lone \\"),
        ("!negated", "a leading ! excludes only within a list"),
    ] {
        let e = PathGlob::new(pattern).expect_err(pattern);
        assert!(e.to_string().contains(reason), "{pattern}: {e}");
        assert!(e.to_string().starts_with("glob "), "{e}");
    }
    let long = "a".repeat(MAX_PATTERN_CHARS + 1);
    assert!(
        PathGlob::new(&long)
            .unwrap_err()
            .reason()
            .contains("longer than")
    );
    let e = PathGlobs::new(["!refs/heads/dev", "refs/heads/**"]).unwrap_err();
    assert!(
        e.to_string().contains("cannot start with an exclusion"),
        "{e}"
    );
    let e = PathGlobs::new(["**", "![x"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "glob \"![x\": [ without a closing ] (write \\[ for a literal [)"
    );
}

#[test]
fn lists_read_from_configurations() {
    let list: PathGlobs = serde_json::from_str(r#"["refs/heads/**", "!refs/heads/dev"]"#).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list.patterns().collect::<Vec<_>>(),
        ["refs/heads/**", "!refs/heads/dev"]
    );
    assert!(list.is_match("refs/heads/main"));
    assert!(!list.is_match("refs/heads/dev"));
    assert!(!PathGlobs::default().is_match(""));
    let e = serde_json::from_str::<PathGlobs>(r#"["refs/[x"]"#).unwrap_err();
    assert!(e.to_string().contains("glob \"refs/[x\""), "{e}");
    let one: PathGlob = serde_json::from_str(r#""release/*""#).unwrap();
    assert_eq!(one.as_str(), "release/*");
    assert!(serde_json::from_str::<PathGlob>("3").is_err());
}

#[test]
fn pathological_inputs_are_fast() {
    let text = "a".repeat(10_000);
    assert!(!glob("*a*a*a*a*a*a*b").is_match(&text));
    assert!(!glob("**a**a**a**a**a**b").is_match(&text));
    let deep = "a/".repeat(5_000);
    assert!(!glob("**/**/**/**/**/x").is_match(&deep));
    let long = "a+".repeat(MAX_PATTERN_CHARS / 2);
    assert!(glob(&long).is_match(&"a".repeat(MAX_PATTERN_CHARS)));
}

#[test]
fn wildcard_match_crosses_slashes() {
    assert!(wildcard_match(
        "refs/heads/release/*",
        "refs/heads/release/1.2"
    ));
    assert!(wildcard_match("refs/tags/v*", "refs/tags/v1/anything"));
    assert!(wildcard_match(
        "arn:aws:iam::*:role/ci/*",
        "arn:aws:iam::123456789012:role/ci/deploy/x"
    ));
    assert!(wildcard_match("refs/tags/v?.*", "refs/tags/v1.0"));
    assert!(wildcard_match("*", ""));
    assert!(wildcard_match(r"lit\*", "lit*"));
    assert!(!wildcard_match(r"lit\*", "litx"));
    assert!(!wildcard_match("refs/tags/v?", "refs/tags/v10"));
    assert!(!wildcard_match("*a*a*a*a*a*a*b", &"a".repeat(10_000)));
}
