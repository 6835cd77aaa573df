//! The `claimex` command as a user runs it: the binary cargo built, a clean environment, a
//! deadline.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How long one command may run.
const LIMIT: Duration = Duration::from_secs(60);

/// The claimex binary cargo built for the running test or bench: `claimex` in the profile
/// directory of the running executable (`target/debug/` for `target/debug/deps/<test>-<hash>`,
/// `target/release/` for a program in it), as `CARGO_BIN_EXE_claimex` names it to the
/// integration tests of the `claimex` package.
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("no current executable: {e}"));
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("claimex{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the claimex binary is not at {}: build it (`cargo build`), or name another one",
        bin.display()
    );
    bin
}

/// Removes every `CLAIMEX_*` and `AWS_*` variable of this process from `command`'s
/// environment, so that a developer's own settings and credentials never reach claimex.
pub fn clean_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("AWS_") || text.starts_with("CLAIMEX_") {
            command.env_remove(&name);
        }
    }
}

/// Runs `claimex <args>` with a clean environment ([`clean_env`]) plus `env`, its output
/// captured; panics when it does not finish within 60 s.
pub fn run<I, K, V>(args: &[&str], env: I) -> Output
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut command = Command::new(bin());
    clean_env(&mut command);
    let child = command
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run claimex: {e}"));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(output) => output.unwrap_or_else(|e| panic!("claimex {args:?}: {e}")),
        Err(_) => {
            // The waiting thread owns the child; end it by its pid.
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("claimex {args:?} did not finish within {LIMIT:?}");
        }
    }
}
