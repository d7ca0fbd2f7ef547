//! Starting the real `criu swrk` with `CommandSpawner`, where CRIU is
//! installed (skipped with a printed reason where it is not).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use super::*;

const LONG: Duration = Duration::from_secs(10);

#[test]
fn command_spawner_refuses_stdio_descriptors() {
    let spawner = CommandSpawner::new();
    let stdin = std::io::stdin();
    let err = spawner
        .spawn_swrk(Path::new("/bin/true"), stdin.as_fd(), &[])
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn missing_criu_binary_is_a_spawn_error() {
    let criu = Criu {
        path: "/nonexistent/criu".into(),
        reply_timeout: LONG,
    };
    let err = criu.start(&CommandSpawner::new()).unwrap_err();
    assert!(matches!(err, CriuError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/criu"), "{err}");
}

/// The real CRIU, when installed: `criu swrk` answers VERSION.
#[test]
fn real_criu_swrk_answers_version() {
    let criu = Criu {
        reply_timeout: Duration::from_secs(30),
        ..Criu::default()
    };
    if !criu.path.exists() {
        eprintln!("skipped: {} not installed", criu.path.display());
        return;
    }
    let spawner = CommandSpawner::new();
    let session = criu.start(&spawner).unwrap();
    assert!(session.pid() > 0);
    let v = session.version().unwrap();
    let statuses = spawner.wait_all().unwrap();
    assert_eq!(statuses.len(), 1);
    assert!(statuses[0].success(), "criu swrk exited {:?}", statuses[0]);
    assert_eq!((v.major, v.minor), (3, 17), "CRIU {v}");
}

/// The real CRIU, when installed: CHECK gets an answer (a failure on a
/// kernel CRIU cannot handle, like this host's), and CRIU found the images
/// directory through /proc/<our pid>/fd/<fd>: its log is there.
#[test]
fn real_criu_swrk_answers_check_and_logs_in_images_dir() {
    let criu = Criu {
        reply_timeout: Duration::from_secs(60),
        ..Criu::default()
    };
    if !criu.path.exists() {
        eprintln!("skipped: {} not installed", criu.path.display());
        return;
    }
    let dir = std::env::temp_dir().join(format!("relive-criu-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = File::open(&dir).unwrap();
    let mut opts = CheckOptions::new(d.as_fd());
    opts.log_file = Some("check.log".into());
    opts.log_level = LogLevel::Info;
    let spawner = CommandSpawner::new();
    let result = criu.start(&spawner).unwrap().check(&opts);
    spawner.wait_all().unwrap();
    let logged = dir.join("check.log").exists();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => eprintln!("criu check passed on this kernel"),
        Err(
            e @ CriuError::Failed {
                request: Request::Check,
                ..
            },
        ) => eprintln!("criu check failed on this kernel (expected on the dev host): {e}"),
        Err(e) => panic!("CHECK got no answer: {e}"),
    }
    assert!(logged, "no check.log in the images directory");
}
