//! Cases taken from systemd's `test_config_parse_exec()` and env tests.

use super::*;
use std::collections::HashMap;

fn loc() -> Location {
    Location {
        file: "/t/a.service".into(),
        line: 7,
    }
}

fn exec(v: &str) -> ExecCommand {
    parse_exec(v, &loc()).unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

fn exec_err(v: &str) -> ExecError {
    match parse_exec_with(v, &loc(), &|w| Ok(w.to_string())) {
        Ok(p) => panic!("{v:?} parsed: {:?}", p.command),
        Err(e) => e,
    }
}

fn argv(c: &ExecCommand) -> Vec<&str> {
    c.argv.iter().map(String::as_str).collect()
}

#[test]
fn basic_and_slashes() {
    let c = exec("/RValue r1");
    assert_eq!(
        (c.path.as_str(), argv(&c)),
        ("/RValue", vec!["/RValue", "r1"])
    );
    let c = exec("/RValue///slashes r1///");
    assert_eq!(c.path, "/RValue/slashes");
    assert_eq!(argv(&c), ["/RValue///slashes", "r1///"]);
    assert_eq!(c.location, loc());
    assert!(!c.ignore_failure && !c.privileged && !c.no_env_expand);
}

#[test]
fn prefixes() {
    let c = exec("@/RValue///slashes2 ///argv0 r1");
    assert_eq!(
        (c.path.as_str(), argv(&c)),
        ("/RValue/slashes2", vec!["///argv0", "r1"])
    );
    let c = exec("-@/RValue argv0a r1");
    assert!(c.ignore_failure);
    assert_eq!(argv(&c), ["argv0a", "r1"]);
    let c = exec("@-/RValue argv0b r1");
    assert!(c.ignore_failure);
    assert_eq!(argv(&c), ["argv0b", "r1"]);
    let c = exec(":+/bin/true");
    assert!(c.no_env_expand && c.privileged);
    assert!(exec("!/bin/true").privileged);
    assert!(
        !exec("!!/bin/true").privileged,
        "!! uses ambient capabilities"
    );
    assert!(exec("-:!/bin/x").ignore_failure);
    // A quoted first word still has its prefixes read (after unquoting).
    assert!(exec("\"-/bin/x\" a").ignore_failure);
}

#[test]
fn bad_prefixes_and_paths() {
    for v in ["--/RValue argv0 r1", "-@-/RValue argv0 r1", "- /path", "-"] {
        assert!(exec_err(v).ignorable, "{v}");
    }
    assert!(!exec_err("+!/bin/x").ignorable, "'!' after '+' is the path");
    assert!(!exec_err("@/RValue").ignorable);
    assert!(!exec_err("/RValue/ argv0 r1").ignorable);
    assert!(exec_err("/RValue/ x").message.contains("directory"));
    assert!(exec_err("a/b").message.contains("neither"));
    // A relative name is searched in $PATH at spawn time (systemd ≥ 239).
    assert_eq!(exec("true").path, "true");
}

#[test]
fn semicolons() {
    assert!(exec_err("-@/RValue argv0 r1 ; /goo/goo boo")
        .message
        .contains("';'"));
    assert!(exec_err("/bin/x a ;").message.contains("';'"));
    assert!(exec_err("; /bin/x").message.contains("';'"));
    assert_eq!(argv(&exec("-@/RValue argv0 r1 ';'")), ["argv0", "r1", ";"]);
    assert_eq!(argv(&exec("/bin/find \\;")), ["/bin/find", ";"]);
    assert_eq!(argv(&exec("/sbin/find \\; /x")), ["/sbin/find", ";", "/x"]);
    assert_eq!(argv(&exec("/bin/find \\073")), ["/bin/find", ";"]);
    assert_eq!(argv(&exec("/bin/find \";\"")), ["/bin/find", ";"]);
    assert_eq!(argv(&exec("/bin/find a;b")), ["/bin/find", "a;b"]);
}

#[test]
fn escaped_semicolon_in_expression_keeps_backslash_with_warning() {
    let p = parse_exec_with("/sbin/find \\;x", &loc(), &|w| Ok(w.to_string())).unwrap();
    assert_eq!(p.command.argv, ["/sbin/find", "\\;x"]);
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn quoting_and_escapes() {
    let c = exec("\"/PATH WITH SPACES/daemon\" -1 -2");
    assert_eq!(
        (c.path.as_str(), argv(&c)),
        (
            "/PATH WITH SPACES/daemon",
            vec!["/PATH WITH SPACES/daemon", "-1", "-2"]
        )
    );
    assert_eq!(exec("\"/PATH WITH SPACES/daemon -1 -2\"").argv.len(), 1);
    assert_eq!(
        argv(&exec("\"/PATH\\sWITH\\sSPACES/daemon\" '-1 -2'"))[1],
        "-1 -2"
    );
    assert_eq!(
        exec("\"/PATH\\x20WITH\\x20SPACES/daemon\" \"-1 -2\"").path,
        "/PATH WITH SPACES/daemon"
    );
    assert_eq!(exec("/path\\s").path, "/path ");
    assert_eq!(argv(&exec("/bin/grep '\\w+\\K'"))[1], "\\w+\\K");
    assert_eq!(
        argv(&exec("/bin/echo a\"b c\"d 'e'f")),
        ["/bin/echo", "ab cd", "ef"]
    );
    assert_eq!(argv(&exec("/bin/echo \"\" x")), ["/bin/echo", "", "x"]);
    assert_eq!(
        argv(&exec("/bin/echo \\n\\t\\\\\\\"\\'")),
        ["/bin/echo", "\n\t\\\"'"]
    );
    assert_eq!(argv(&exec("/bin/echo \\xc3\\xa9")), ["/bin/echo", "é"]);
}

#[test]
fn invalid_characters_in_path() {
    for c in "abfnrtv\\'\"x".chars() {
        let v = format!("/path\\{c}");
        assert!(parse_exec(&v, &loc()).is_err(), "{v}");
    }
    for v in ["/path\\", "/path 'foo", "/path 'foo\\", "/bin/x \\xff"] {
        assert!(parse_exec(v, &loc()).is_err(), "{v}");
    }
    let e = parse_exec("/path 'foo", &loc()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/t/a.service:7: unbalanced quoting in '/path 'foo'"
    );
}

#[test]
fn specifiers_resolve_per_word() {
    let resolve = |w: &str| Ok(w.replace("%I", "a b"));
    let p = parse_exec_with("/bin/echo %I x%I", &loc(), &resolve).unwrap();
    assert_eq!(p.command.argv, ["/bin/echo", "a b", "xa b"]);
}

#[test]
fn split_and_quote() {
    assert_eq!(
        split_words("a 'b c' \"d\\\"e\"").unwrap(),
        ["a", "b c", "d\"e"]
    );
    assert!(split_words("'x").is_err());
    for w in [
        "",
        "plain",
        "a b",
        "it's",
        "say \"hi\"",
        "back\\slash",
        "tab\there",
        "nl\n",
        "ü €",
        "$x ${y}",
        "%n",
        "\u{1}",
    ] {
        let q = quote_word(w);
        assert_eq!(split_words(&q).unwrap(), [w], "{q}");
    }
    assert_eq!(quote_word("/usr/bin/x"), "/usr/bin/x");
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expand(args: &[&str], e: &HashMap<String, String>) -> Vec<String> {
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    expand_argv(&argv, &|n| e.get(n).cloned())
}

#[test]
fn dollar_word_splits_and_braces_do_not() {
    let e = env(&[("OPTS", "-o 'a b'  -v"), ("ONE", "x y"), ("EMPTY", "")]);
    assert_eq!(
        expand(&["/s", "-D", "$OPTS"], &e),
        ["/s", "-D", "-o", "a b", "-v"]
    );
    assert_eq!(expand(&["/s", "${ONE}"], &e), ["/s", "x y"]);
    assert_eq!(expand(&["/s", "--a=${ONE}!"], &e), ["/s", "--a=x y!"]);
    assert_eq!(expand(&["/s", "--a=$ONE"], &e), ["/s", "--a=$ONE"]);
    assert_eq!(
        expand(&["/s", "$UNSET", "$EMPTY", "${UNSET}"], &e),
        ["/s", ""]
    );
    assert_eq!(expand(&["/s", "$ONE/x", "$"], &e), ["/s"]);
    assert_eq!(
        expand(&["/s", "$$ONE", "a$$b", "${ONE"], &e),
        ["/s", "$ONE", "a$b", "${ONE"]
    );
    assert_eq!(
        expand(&["/s", "${ONE:-d}", "${}"], &e),
        ["/s", "${ONE:-d}", ""]
    );
}

#[test]
fn environment_directive() {
    assert_eq!(
        parse_environment("\"A=1\" B=2 \"C=x y\" D= E=a=b").unwrap(),
        [
            ("A", "1"),
            ("B", "2"),
            ("C", "x y"),
            ("D", ""),
            ("E", "a=b")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert!(parse_environment("NOEQUALS").is_err());
    assert!(parse_environment("1A=x").is_err());
    assert!(parse_environment("\"A=1").is_err());
    assert_eq!(parse_environment("").unwrap(), []);
}

#[test]
fn environment_file() {
    let text = "# comment\n; other\nA=1\n  B = two words  \nexport C=3\nD='single $x'\nE=\"dq \\\"q\\\" \\$x \\n\"\n\
                F=a\\\nb\nbad key=1\n1X=2\nG=\nA=again\nH=\"multi\nline\"\n#c \\\nI=commented\nJ=x\\ \n";
    let got = parse_environment_file(text);
    let want: Vec<(String, String)> = [
        ("A", "again"),
        ("B", "two words"),
        ("D", "single $x"),
        ("E", "dq \"q\" $x \\n"),
        ("F", "ab"),
        ("G", ""),
        ("H", "multi\nline"),
        ("J", "x "),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        parse_environment_file("K='unterminated"),
        [("K".to_string(), "unterminated".to_string())]
    );
    assert_eq!(
        parse_environment_file("L=1\0M=2"),
        [("L".to_string(), "1".to_string())]
    );
}
