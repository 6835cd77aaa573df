use super::*;
use serde::Deserialize;

fn input() -> Input {
    Input::new(
        "github",
        "https://token.actions.githubusercontent.com",
        json!({"sub": "repo:a/b", "run_id": 42, "nested": {"deep": {"x": "y"}}, "a.b": "dotted",
               "nothing": null, "list": [1]}),
    )
}

#[test]
fn reads_claims() {
    let input = input();
    assert_eq!(input.str_claim("sub"), Some("repo:a/b"));
    assert_eq!(input.text_claim("run_id").as_deref(), Some("42"));
    assert_eq!(input.str_claim("nested.deep.x"), Some("y"));
    assert_eq!(input.str_claim("a.b"), Some("dotted"));
    assert_eq!(input.claim("nested.missing"), None);
    assert_eq!(input.subject_kind, SubjectKind::Oidc);
}

#[test]
fn required_claims_deny_with_a_code() {
    let input = input();
    assert_eq!(input.require_str("sub"), Ok("repo:a/b"));
    assert_eq!(input.require_text("run_id").as_deref(), Ok("42"));
    let deny = input.require_str("repository").unwrap_err();
    assert_eq!(deny.code(), codes::MISSING_CLAIM);
    assert_eq!(deny.reason(), "the credential has no repository claim");
    assert_eq!(
        input.require_str("nothing").unwrap_err().code(),
        "missing_claim"
    );
    let deny = input.require_str("run_id").unwrap_err();
    assert_eq!(deny.code(), codes::INVALID_CLAIM);
    assert!(deny.reason().contains("not a string"), "{deny}");
    assert_eq!(
        input.require_text("list").unwrap_err().code(),
        "invalid_claim"
    );
}

#[test]
fn checks_are_recorded_only_when_explaining() {
    let quiet = input();
    let mut called = false;
    assert!(!quiet.check("a", false, || {
        called = true;
        "detail"
    }));
    assert!(
        !called,
        "the detail of a check is built only when explaining"
    );
    assert!(quiet.checks().is_empty());

    let loud = input().explaining();
    assert!(loud.explain());
    assert!(loud.check("a", true, || "one"));
    assert!(!loud.check("b", false, || format!("two {}", 2)));
    assert_eq!(
        loud.checks(),
        vec![
            Check {
                name: "a".into(),
                passed: true,
                detail: "one".into()
            },
            Check {
                name: "b".into(),
                passed: false,
                detail: "two 2".into()
            },
        ]
    );
}

#[test]
fn deny_codes() {
    for good in ["a", "owner_not_allowed", "x9", &"a".repeat(64)] {
        assert!(is_valid_code(good), "{good}");
    }
    for bad in ["", "Owner", "owner-not", "owner not", "é", &"a".repeat(65)] {
        assert!(!is_valid_code(bad), "{bad}");
    }
    let deny = Deny::new("code", format!("reason {}", 1));
    assert_eq!(deny.to_string(), "reason 1 (code)");
}

#[test]
fn builds_the_tags_claim() {
    let out = Outbound::new()
        .sub("x")
        .tag("repository", "a/b")
        .transitive_tag("ref", "refs/heads/main");
    assert!(out.validate().is_ok());
    let claims = out.into_claims();
    assert_eq!(
        claims[TAGS_CLAIM],
        json!({"principal_tags": {"repository": ["a/b"], "ref": ["refs/heads/main"]},
               "transitive_tag_keys": ["ref"]})
    );
}

#[test]
fn validate_names_the_bad_tag_and_denies_with_a_code() {
    let err = Outbound::new().tag("bad#key", "v").validate().unwrap_err();
    assert!(err.to_string().contains("bad#key"));
    let deny = Deny::from(err);
    assert_eq!(deny.code(), codes::INVALID_SESSION_TAGS);
    assert!(deny.reason().contains("bad#key"), "{deny}");
}

#[test]
fn no_tags_no_claim() {
    assert!(
        !Outbound::new()
            .sub("s")
            .into_claims()
            .contains_key(TAGS_CLAIM)
    );
}

/// No `deny_unknown_fields`: the SDK refuses unknown members anyway.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct Lenient {
    owners: Vec<String>,
    nested: Nested,
    maybe: Option<Nested>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(default)]
struct Nested {
    depth: u32,
}

fn needs_owners(config: &Lenient) -> Result<(), String> {
    if config.owners.is_empty() {
        Err("set owners".into())
    } else {
        Ok(())
    }
}

#[test]
fn configs_are_read_strictly() {
    let config: Lenient = load_config(
        r#"{"owners": ["o"], "nested": {"depth": 2}}"#,
        no_validation,
    )
    .unwrap();
    assert_eq!(config.owners, ["o"]);
    assert_eq!(config.nested.depth, 2);

    let err = load_config::<Lenient>(r#"{"owner": ["o"]}"#, no_validation).unwrap_err();
    assert_eq!(err, "unknown field `owner`");
    let err = load_config::<Lenient>(
        r#"{"nested": {"dpth": 1}, "maybe": {"x": 1}, "z": 0}"#,
        no_validation,
    )
    .unwrap_err();
    assert_eq!(err, "unknown fields `maybe.x`, `nested.dpth`, `z`");
    // Type errors are serde's own, and come first.
    let err = load_config::<Lenient>(r#"{"owners": "o", "z": 0}"#, no_validation).unwrap_err();
    assert_eq!(
        err, "invalid type: string \"o\", expected a sequence",
        "{err}"
    );
    let err = load_config::<Lenient>("{", no_validation).unwrap_err();
    assert!(err.starts_with("the configuration is not JSON"), "{err}");
}

#[test]
fn an_unset_config_is_read_as_defaults_or_none() {
    assert_eq!(
        load_config::<Lenient>("null", no_validation).unwrap(),
        Lenient::default()
    );
    assert_eq!(
        load_config::<Option<Nested>>("null", no_validation).unwrap(),
        None
    );
    assert_eq!(
        load_config::<Value>("null", no_validation).unwrap(),
        Value::Null
    );
    assert_eq!(
        load_config::<Value>(r#"{"any": [1]}"#, no_validation).unwrap(),
        json!({"any": [1]})
    );
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Required {
        rules: Vec<String>,
    }
    let err = load_config::<Required>("null", no_validation).unwrap_err();
    assert_eq!(err, "missing field `rules`");
}

#[test]
fn the_validation_hook_runs_after_reading() {
    assert_eq!(
        load_config::<Lenient>("null", needs_owners).unwrap_err(),
        "set owners"
    );
    assert!(load_config::<Lenient>(r#"{"owners": ["o"]}"#, needs_owners).is_ok());
}

fn owner_mapper(input: &Input, config: &Lenient) -> Result<Outbound, Deny> {
    let owner = input.require_str("owner")?;
    let ok = config.owners.iter().any(|o| o == owner);
    if !input.check("owner", ok, || format!("owner {owner}")) {
        return Err(Deny::new(
            "owner_not_allowed",
            format!("{owner} is not allowed"),
        ));
    }
    Ok(Outbound::new().sub(input.require_str("sub")?))
}

fn request(claims: Value, config: &str, explain: bool) -> Request {
    Request {
        subject_kind: SubjectKind::AwsIam,
        issuer_id: "i".into(),
        issuer_url: String::new(),
        claims: claims.to_string(),
        config: config.into(),
        explain,
    }
}

#[test]
fn run_is_the_whole_call() {
    let config = r#"{"owners": ["o"]}"#;
    let verdict = run(
        request(json!({"owner": "o", "sub": "s"}), config, false),
        owner_mapper,
        needs_owners,
    )
    .unwrap();
    assert_eq!(verdict.decision, Decision::Allow(r#"{"sub":"s"}"#.into()));
    assert!(verdict.checks.is_empty());

    let verdict = run(
        request(json!({"owner": "x"}), config, true),
        owner_mapper,
        needs_owners,
    )
    .unwrap();
    assert_eq!(
        verdict.decision,
        Decision::Deny(Deny::new("owner_not_allowed", "x is not allowed"))
    );
    assert_eq!(verdict.checks.len(), 1);
    assert!(!verdict.checks[0].passed);
    assert_eq!(verdict.checks[0].detail, "owner x");

    // Failures of the mapper, not refusals.
    let err = run(
        request(json!({"owner": "o"}), r#"{"owners": []}"#, false),
        owner_mapper,
        needs_owners,
    )
    .unwrap_err();
    assert_eq!(err, "mapper configuration is invalid: set owners");
    let mut bad = request(json!({}), config, false);
    bad.claims = "[1]".into();
    let err = run(bad, owner_mapper, needs_owners).unwrap_err();
    assert!(err.starts_with("mapper could not read the claims"), "{err}");
    let bad_code: MapFn<Lenient> = |_, _| Err(Deny::new("Not-A-Code", "no"));
    let err = run(request(json!({}), config, false), bad_code, no_validation).unwrap_err();
    assert!(err.contains("\"Not-A-Code\""), "{err}");
}

#[test]
fn tags_are_sanitized_unless_exact() {
    let long = "é".repeat(300);
    let out = Outbound::new()
        .tag("workflow", "Deploy #1 (prod)")
        .tag("ref", "refs/heads/main")
        .tag("long", long.as_str())
        .transitive_tag("actor", "octo\ncat");
    assert!(out.validate().is_ok());
    let claims = out.into_claims();
    let tags = &claims[TAGS_CLAIM]["principal_tags"];
    assert_eq!(tags["workflow"], json!(["Deploy _1 _prod_"]));
    assert_eq!(tags["ref"], json!(["refs/heads/main"]));
    assert_eq!(tags["long"][0].as_str().unwrap().chars().count(), 256);
    assert_eq!(tags["actor"], json!(["octo_cat"]));
    let exact = Outbound::new().tag_exact("workflow", "Deploy #1");
    assert!(exact.validate().is_err());
}

#[test]
fn boolean_readers() {
    let input = Input::new(
        "gitlab",
        "https://gitlab.example.com",
        json!({"a": true, "b": "true", "c": false, "d": "false", "e": "yes", "f": 1, "g": null,
               "nested": {"flag": "true"}}),
    );
    assert!(input.is_true("a") && input.is_true("b") && input.is_true("nested.flag"));
    assert!(!input.is_true("c") && !input.is_true("e") && !input.is_true("missing"));
    assert_eq!(input.bool_claim("d"), Some(false));
    assert_eq!(input.bool_claim("f"), None);
    assert_eq!(input.require_bool("b"), Ok(true));
    assert_eq!(input.require_bool("c"), Ok(false));
    assert_eq!(
        input.require_bool("e").unwrap_err().code(),
        codes::INVALID_CLAIM
    );
    assert_eq!(
        input.require_bool("e").unwrap_err().reason(),
        "the credential's e claim is not true or false"
    );
    assert_eq!(
        input.require_bool("g").unwrap_err().code(),
        codes::MISSING_CLAIM
    );
    assert_eq!(
        input.require_bool("zz").unwrap_err().code(),
        codes::MISSING_CLAIM
    );
}

#[test]
fn configurations_read_globs_and_prefix_maps_strictly() {
    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(default)]
    struct Config {
        allowed_namespaces: PathGlobs,
        teams: PrefixMap<String>,
    }
    let config: Config = load_config(
        r#"{"allowed_namespaces": ["platform/**"], "teams": {"platform": "core", "platform/pay": "pay"}}"#,
        no_validation,
    )
    .unwrap();
    assert!(config.allowed_namespaces.is_match("platform/pay/api"));
    assert_eq!(config.teams.lookup("platform/pay/api").unwrap().1, "pay");
    let e = load_config::<Config>(r#"{"allowed_namespaces": ["platform/[x"]}"#, no_validation)
        .unwrap_err();
    assert!(e.starts_with("glob \"platform/[x\""), "{e}");
    let e = load_config::<Config>(r#"{"teams": {"/platform": "x"}}"#, no_validation).unwrap_err();
    assert!(e.contains("prefix \"/platform\""), "{e}");
    let e = load_config::<Config>(r#"{"team": {}}"#, no_validation).unwrap_err();
    assert_eq!(e, "unknown field `team`");
}

#[test]
fn the_lean_path_reads_only_the_named_claims_as_any_value() {
    use crate::Claim;
    use serde::Deserialize;
    use std::borrow::Cow;

    #[derive(Deserialize, Default, Debug)]
    #[serde(default)]
    struct Claims<'a> {
        #[serde(borrow)]
        s: Claim<'a>,
        #[serde(borrow)]
        escaped: Claim<'a>,
        #[serde(borrow)]
        n: Claim<'a>,
        #[serde(borrow)]
        f: Claim<'a>,
        #[serde(borrow)]
        b: Claim<'a>,
        #[serde(borrow)]
        null: Claim<'a>,
        #[serde(borrow)]
        obj: Claim<'a>,
        #[serde(borrow)]
        list: Claim<'a>,
        #[serde(borrow)]
        absent: Claim<'a>,
    }
    let text = r#"{"s":"plain","escaped":"a\"b","n":65,"f":1.5,"b":true,"null":null,
        "obj":{"x":[1,{"y":2}]},"list":[1,"2"],"other":{"deep":[[[]]]}}"#;
    let value: Value = serde_json::from_str(text).unwrap();
    let request = Request {
        claims: text.into(),
        ..Default::default()
    };
    // The same answers from the host's text and from a hand-built input.
    for input in [
        Input::from_request(request),
        Input::new("i", "https://x", value.clone()),
    ] {
        let c: Claims = input.read().unwrap();
        assert!(
            matches!(c.s, Claim::Str(Cow::Borrowed("plain"))),
            "{:?}",
            c.s
        );
        assert_eq!(c.escaped.as_str(), Some("a\"b"));
        assert_eq!(c.n.text().as_deref(), Some("65"));
        assert_eq!(c.n.as_str(), None);
        assert_eq!(c.f.text().as_deref(), Some(value["f"].to_string().as_str()));
        assert_eq!(c.b.text().as_deref(), Some("true"));
        assert_eq!(c.null, Claim::Null);
        assert_eq!(c.obj, Claim::Other);
        assert_eq!(c.list, Claim::Other);
        assert_eq!(c.absent, Claim::Absent);
        // The accessors and the lean path agree on text.
        for name in ["s", "escaped", "n", "f", "b", "null", "obj", "absent"] {
            let lean = match name {
                "s" => c.s.text(),
                "escaped" => c.escaped.text(),
                "n" => c.n.text(),
                "f" => c.f.text(),
                "b" => c.b.text(),
                "null" => c.null.text(),
                "obj" => c.obj.text(),
                _ => c.absent.text(),
            };
            assert_eq!(lean.map(Cow::into_owned), input.text_claim(name), "{name}");
        }
        assert_eq!(
            c.absent.require_str("absent").unwrap_err().code(),
            "missing_claim"
        );
        assert_eq!(
            c.null.require_str("null").unwrap_err().code(),
            "missing_claim"
        );
        assert_eq!(c.n.require_str("n").unwrap_err().code(), "invalid_claim");
        assert_eq!(c.s.require_sub("s").unwrap_err().code(), "invalid_sub");
    }
    // Not an object: a deny, not a panic.
    let request = Request {
        claims: "[1]".into(),
        ..Default::default()
    };
    let input = Input::from_request(request);
    assert_eq!(input.read::<Claims>().unwrap_err().code(), "invalid_claim");
}

#[test]
fn to_json_writes_what_into_claims_builds() {
    let cases = [
        Outbound::new(),
        Outbound::new().sub("repo:o/r:ref:x"),
        Outbound::new()
            .sub("repo:o/r:ref:x")
            .aud("sts.amazonaws.com")
            .claim("z", json!({"nested": [1, "two"]}))
            .tag("workflow", "Deploy \"prod\"")
            .transitive_tag("actor", "octo\ncat"),
        Outbound::new().make_transitive("k"),
        // A claim set under the tags' name is replaced by the tags, as into_claims does.
        Outbound::new()
            .claim(TAGS_CLAIM, json!("replaced"))
            .tag("k", "v"),
        Outbound::new().claim(TAGS_CLAIM, json!({"kept": true})),
    ];
    for out in cases {
        let text = out.to_json();
        assert_eq!(text, Value::Object(out.clone().into_claims()).to_string());
    }
}
