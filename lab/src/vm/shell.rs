//! An interactive ssh session into the guest (`ssh -tt`: a pty and a login
//! shell in the guest, fed through a pipe), kept open across a live
//! upgrade. Its sshd and shell live in ssh.service, a preserved unit: the
//! session must carry on on the new kernel.

use crate::vm::paths::Paths;
use crate::vm::ssh;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Shell {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Shell {
    pub fn open(paths: &Paths, port: u16) -> Result<Shell> {
        let mut child = ssh::interactive(paths, port)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ssh -tt")?;
        let stdin = child.stdin.take().context("ssh stdin")?;
        let stdout = child.stdout.take().context("ssh stdout")?;
        // ssh's own complaints go to the same transcript.
        let stderr = child.stderr.take().context("ssh stderr")?;
        let output = Arc::new(Mutex::new(String::new()));
        for mut from in [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ] {
            let sink = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .expect("shell output lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut shell = Shell {
            child,
            stdin,
            output,
        };
        shell.ask("echo ready", Duration::from_secs(60))?;
        Ok(shell)
    }

    /// Runs `command` in the session and returns its first output line.
    /// The pty echoes what we type, so the answer is framed by markers the
    /// echoed command line does not contain (`$(...)` is expanded only in
    /// the output).
    pub fn ask(&mut self, command: &str, timeout: Duration) -> Result<String> {
        let start = self.output.lock().expect("shell output lock").len();
        writeln!(self.stdin, "echo \"@@<$({command})>@@\"").context("writing to ssh")?;
        self.stdin.flush()?;
        let started = Instant::now();
        loop {
            {
                let text = self.output.lock().expect("shell output lock");
                let mut rest = &text[start..];
                while let Some(begin) = rest.find("@@<") {
                    rest = &rest[begin + 3..];
                    let Some(len) = rest.find(">@@") else { break };
                    // The echoed command line has `$(`; the output has not.
                    if !rest[..len].contains("$(") {
                        return Ok(rest[..len].trim().to_owned());
                    }
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the ssh session ended ({status})");
            }
            if started.elapsed() > timeout {
                let text = self.output.lock().expect("shell output lock");
                let tail: String = text[start..].chars().rev().take(300).collect();
                let tail: String = tail.chars().rev().collect();
                bail!("no answer to `{command}` in the ssh session after {timeout:?}; it printed {tail:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the ssh client runs (its connection is up).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn close(mut self) {
        let _ = writeln!(self.stdin, "exit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
