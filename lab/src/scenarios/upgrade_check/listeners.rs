//! (l) A socket-activated service across the kexec: relive-echo-sock.service
//! got its listening socket from relive-echo-sock.socket (127.0.0.1:7010).
//! After the upgrade the socket unit is active (not failed for its
//! service being up), the service runs on its old PID and answers, and it
//! listens through the socket unit's listener: PID 1 and the service hold
//! the one listening socket, as before the upgrade.

/// Activates the service (its first connection) and says its PID.
pub const ACTIVATE: &str = "echo first | nc -q1 127.0.0.1 7010; \
     systemctl show -p MainPID --value relive-echo-sock.service";

/// After the upgrade: both units' states, the service's PID, an echo,
/// and who holds the listening socket.
pub const AFTER: &str = "systemctl is-active relive-echo-sock.socket relive-echo-sock.service; \
     systemctl show -p MainPID --value relive-echo-sock.service; \
     echo again | nc -q1 127.0.0.1 7010; \
     ss -Hltnp 'sport = :7010'";

/// What [`AFTER`] printed, against the service's PID before.
pub fn verdict(stdout: &str, pid_before: &str) -> (bool, String) {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let listening: Vec<&str> = lines.iter().skip(4).copied().collect();
    let one_socket = listening.len() == 1
        && listening[0].contains("pid=1,")
        && listening[0].contains(&format!("pid={pid_before},"));
    let ok = lines.len() >= 5
        && lines[0] == "active"
        && lines[1] == "active"
        && lines[2] == pid_before
        && lines[3] == "again"
        && one_socket;
    (
        ok,
        format!("PID before {pid_before}; {}", lines.join(" | ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_listener_shared_by_pid_1_and_the_service() {
        let good = "active\nactive\n20400\nagain\nLISTEN 0 4096 127.0.0.1:7010 0.0.0.0:* users:((\"relive-echo\",pid=20400,fd=3),(\"relive\",pid=1,fd=31))\n";
        assert!(verdict(good, "20400").0);
        // The service on a listener of its own, the socket unit failed.
        let own = "failed\nactive\n20400\nagain\nLISTEN 0 4096 127.0.0.1:7010 0.0.0.0:* users:((\"relive-echo\",pid=20400,fd=3))\n";
        assert!(!verdict(own, "20400").0);
    }
}
