//! User= and Group= resolution from /etc/passwd and /etc/group.
//!
//! PID 1 makes no NSS calls (they may load modules, talk to daemons that
//! are not running yet, or block): services run as local system users,
//! which live in these files.

use super::spawn::Credentials;
use std::fs;
use std::path::Path;

/// A user as resolved for a service, with what goes into its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub name: String,
    pub credentials: Credentials,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {0:?} not found in /etc/passwd")]
    NoSuchUser(String),
    #[error("group {0:?} not found in /etc/group")]
    NoSuchGroup(String),
}

/// The account databases, read once per resolution (they are small).
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    passwd: String,
    group: String,
}

impl Accounts {
    pub fn read(etc: &Path) -> Accounts {
        Accounts {
            passwd: fs::read_to_string(etc.join("passwd")).unwrap_or_default(),
            group: fs::read_to_string(etc.join("group")).unwrap_or_default(),
        }
    }

    pub fn from_text(passwd: &str, group: &str) -> Accounts {
        Accounts {
            passwd: passwd.to_owned(),
            group: group.to_owned(),
        }
    }

    /// Resolves User= (name or number), Group= (defaults to the user's
    /// primary group) and SupplementaryGroups=; the user's own memberships
    /// in /etc/group are added, as initgroups(3) would.
    pub fn resolve(
        &self,
        user: Option<&str>,
        group: Option<&str>,
        supplementary: &[String],
    ) -> Result<ResolvedUser, UserError> {
        let (name, uid, primary_gid, home, shell) = match user {
            Some(u) => self
                .passwd_entry(u)
                .ok_or_else(|| UserError::NoSuchUser(u.to_owned()))?,
            None => (
                "root".to_owned(),
                0,
                0,
                "/root".to_owned(),
                "/bin/sh".to_owned(),
            ),
        };
        let gid = match group {
            Some(g) => self
                .group_id(g)
                .ok_or_else(|| UserError::NoSuchGroup(g.to_owned()))?,
            None => primary_gid,
        };
        let mut groups = vec![gid];
        for g in supplementary {
            groups.push(
                self.group_id(g)
                    .ok_or_else(|| UserError::NoSuchGroup(g.clone()))?,
            );
        }
        groups.extend(self.memberships(&name));
        groups.sort_unstable();
        groups.dedup();
        Ok(ResolvedUser {
            name,
            credentials: Credentials { uid, gid, groups },
            home,
            shell,
        })
    }

    fn passwd_entry(&self, user: &str) -> Option<(String, u32, u32, String, String)> {
        let numeric: Option<u32> = user.parse().ok();
        for line in self.passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
                continue;
            };
            if f[0] == user || numeric == Some(uid) {
                return Some((f[0].to_owned(), uid, gid, f[5].to_owned(), f[6].to_owned()));
            }
        }
        // A bare number that is in no database is still a valid uid.
        numeric.map(|uid| {
            (
                user.to_owned(),
                uid,
                uid,
                "/".to_owned(),
                "/bin/sh".to_owned(),
            )
        })
    }

    fn group_id(&self, group: &str) -> Option<u32> {
        if let Ok(gid) = group.parse() {
            return Some(gid);
        }
        self.group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == group)
            .and_then(|f| f[2].parse().ok())
    }

    fn memberships(&self, user: &str) -> Vec<u32> {
        self.group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == user))
            .filter_map(|f| f[2].parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nredis:x:104:107::/var/lib/redis:/usr/sbin/nologin\nbroken line\n";
    const GROUP: &str = "root:x:0:\nredis:x:107:\nadm:x:4:redis,other\n";

    #[test]
    fn user_with_primary_group_and_memberships() {
        let a = Accounts::from_text(PASSWD, GROUP);
        let r = a.resolve(Some("redis"), None, &[]).unwrap();
        assert_eq!(
            r.credentials,
            Credentials {
                uid: 104,
                gid: 107,
                groups: vec![4, 107]
            }
        );
        assert_eq!(r.home, "/var/lib/redis");
    }

    #[test]
    fn explicit_group_and_numbers() {
        let a = Accounts::from_text(PASSWD, GROUP);
        let r = a
            .resolve(Some("redis"), Some("root"), &["adm".into()])
            .unwrap();
        assert_eq!(r.credentials.gid, 0);
        let r = a.resolve(Some("1234"), None, &[]).unwrap();
        assert_eq!((r.credentials.uid, r.credentials.gid), (1234, 1234));
    }

    #[test]
    fn unknown_names_are_errors() {
        let a = Accounts::from_text(PASSWD, GROUP);
        assert_eq!(
            a.resolve(Some("nobody-here"), None, &[]),
            Err(UserError::NoSuchUser("nobody-here".into()))
        );
        assert_eq!(
            a.resolve(None, Some("nogroup-x"), &[]),
            Err(UserError::NoSuchGroup("nogroup-x".into()))
        );
    }
}
