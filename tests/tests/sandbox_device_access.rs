//! DeviceAllow= and DevicePolicy=: a cgroup BPF device program keeps a
//! service from opening the devices its unit does not allow, as systemd
//! does; an open it denies fails with EPERM.

use relive_tests::{require_sandbox, Sandbox};
use std::time::Duration;

/// Opens each device for reading and writing, and says what happened.
fn probe(devices: &str) -> String {
    format!(
        "ExecStart=/bin/sh -c 'for d in {devices}; do if ( : <>$d ) 2>/dev/null; then echo \"$d open\"; \
         else echo \"$d denied\"; fi; done; exec sleep 1000'\n"
    )
}

#[test]
fn only_the_allowed_devices_open() {
    require_sandbox!();
    let probed = "/dev/null /dev/zero /dev/kmsg /dev/full";
    let strict = format!(
        "[Service]\n{}DevicePolicy=strict\nDeviceAllow=/dev/null rw\nDeviceAllow=char-mem r\n",
        probe(probed)
    );
    let closed = format!("[Service]\n{}DevicePolicy=closed\n", probe(probed));
    let open = format!("[Service]\n{}", probe(probed));
    let sandbox = Sandbox::boot(
        &[
            ("strict.service", strict.as_str()),
            ("closed.service", closed.as_str()),
            ("open.service", open.as_str()),
            (
                "multi-user.target",
                "[Unit]\nWants=strict.service closed.service open.service\n",
            ),
        ],
        "",
    );
    for unit in ["strict.service", "closed.service", "open.service"] {
        sandbox.wait_state(unit, "active", Duration::from_secs(20));
        sandbox.wait_for("its probe", Duration::from_secs(10), || {
            !sandbox.log_lines(&format!("{unit}: /dev/full ")).is_empty()
        });
    }
    let seen = |unit: &str, device: &str| -> String {
        let lines = sandbox.log_lines(&format!("{unit}: {device} "));
        let line = lines.first().cloned().unwrap_or_default();
        line.rsplit(' ').next().unwrap_or_default().to_owned()
    };
    // strict: /dev/null as listed; char-mem (major 1: null, zero, kmsg,
    // full...) only for reading, so not for this read-write open.
    assert_eq!(seen("strict.service", "/dev/null"), "open");
    for device in ["/dev/zero", "/dev/kmsg", "/dev/full"] {
        assert_eq!(seen("strict.service", device), "denied", "{device}");
    }
    // closed: the standard pseudo devices, not /dev/kmsg.
    for device in ["/dev/null", "/dev/zero", "/dev/full"] {
        assert_eq!(seen("closed.service", device), "open", "{device}");
    }
    assert_eq!(seen("closed.service", "/dev/kmsg"), "denied");
    // No policy: everything root may open.
    for device in ["/dev/null", "/dev/zero", "/dev/kmsg", "/dev/full"] {
        assert_eq!(seen("open.service", device), "open", "{device}");
    }
    let _ = sandbox.poweroff();
}
