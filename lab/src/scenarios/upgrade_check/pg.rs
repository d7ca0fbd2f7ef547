//! (n) A database across the kexec: the postgres cluster, under Debian's
//! configuration, is preserved (relive gives it an IPC namespace of its
//! own; the check reads that it has one), and relive-pgapp
//! holds a transaction open on it over the unix socket (an uncommitted
//! row), to be committed only after the upgrade. The row must be
//! invisible before, and committed by the same connection after.

/// The note of relive-pgapp's row.
const NOTE: &str = "relive-lab-transaction";

fn count_rows() -> String {
    format!(
        "cd / && runuser -u postgres -- psql -tAXc \"select count(*) from relive_lab where note = '{NOTE}'\""
    )
}

/// Prints `ipc-own` when the postmaster runs in an IPC namespace other
/// than PID 1's while no unit file or drop-in of the image asks for one:
/// relive gave it.
const OWN_IPC: &str = "pm=$(head -n 1 /var/lib/postgresql/*/main/postmaster.pid); \
     if [ \"$(readlink /proc/$pm/ns/ipc)\" != \"$(readlink /proc/1/ns/ipc)\" ] \
     && ! grep -rqs PrivateIPC /etc/systemd/system/postgresql@.service.d \
     /lib/systemd/system/postgresql@.service; then echo ipc-own; else echo ipc-shared; fi";

/// (Re)starts relive-pgapp, which opens its transaction; prints what
/// psql said and whether relive gave the cluster its IPC namespace, `@@`,
/// and the committed rows with its note.
pub fn open_script() -> String {
    format!(
        "relivectl stop relive-pgapp.service; relivectl start relive-pgapp.service && sleep 5; \
         cat /run/relive-pgapp/out; {OWN_IPC}; echo @@; {}",
        count_rows()
    )
}

/// Tells relive-pgapp to commit; prints the same, then `@@` and the end
/// of the cluster's log (the evidence when the connection was lost).
pub fn commit_script() -> String {
    format!(
        "touch /run/relive-pgapp/commit && sleep 5; cat /run/relive-pgapp/out; echo @@; {}; \
         echo @@; tail -n 12 /var/log/postgresql/postgresql-*-main.log",
        count_rows()
    )
}

/// psql's output and the committed rows, from either script.
fn parse(stdout: &str) -> (String, Option<u64>) {
    let (out, rest) = stdout.split_once("@@").unwrap_or((stdout, ""));
    let count = rest.split("@@").next().unwrap_or_default();
    (out.trim().to_owned(), count.trim().parse().ok())
}

/// The cluster's log lines [`commit_script`] printed.
fn server_log(stdout: &str) -> String {
    stdout
        .splitn(3, "@@")
        .nth(2)
        .unwrap_or_default()
        .trim()
        .replace('\n', " | ")
}

/// The transaction is open: psql said so, and its row is not visible;
/// the cluster runs under Debian's unit in an IPC namespace relive gave
/// it. Returns the committed rows so far.
pub fn open_verdict(stdout: &str) -> (Option<u64>, String) {
    let (out, count) = parse(stdout);
    let open = out.lines().any(|l| l.starts_with("open|")) && out.lines().any(|l| l == "ipc-own");
    (
        count.filter(|_| open),
        format!(
            "psql: {}; committed rows: {count:?}",
            out.replace('\n', " | ")
        ),
    )
}

/// After the upgrade: the same connection committed, one more row.
pub fn commit_verdict(stdout: &str, before: u64) -> (bool, String) {
    let (out, count) = parse(stdout);
    let said = format!("committed|{}", before + 1);
    (
        out.lines().any(|l| l == said) && count == Some(before + 1),
        format!(
            "psql: {}; committed rows: {count:?} (before: {before}); server log: {}",
            out.replace('\n', " | "),
            server_log(stdout)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_then_committed_transaction_is_recognized() {
        let (before, _) = open_verdict("open|812\nipc-own\n@@\n2\n");
        assert_eq!(before, Some(2));
        // The cluster in the machine's IPC namespace: not what relive does.
        assert_eq!(open_verdict("open|812\nipc-shared\n@@\n2\n").0, None);
        assert_eq!(
            open_verdict("psql: error: connection refused\n@@\n2\n").0,
            None
        );
        assert!(commit_verdict("open|812\ncommitted|3\n@@\n3\n", 2).0);
        // A connection lost with the upgrade: psql errors, nothing added.
        let lost = "open|812\nserver closed the connection unexpectedly\n@@\n2\n";
        assert!(!commit_verdict(lost, 2).0);
        let logged = "open|812\n@@\n2\n@@\nLOG:  server process (PID 9) was terminated\n";
        let (ok, detail) = commit_verdict(logged, 2);
        assert!(!ok);
        assert!(
            detail.contains("server log: LOG:  server process (PID 9)"),
            "{detail}"
        );
    }
}
