//! Redis URLs as text: with the password hidden for messages, and with
//! another host, for the nodes of a Cluster.
//!
//! Both work on `scheme://[user[:password]@]hosts[/rest]`, which covers
//! `redis://`, `rediss://` and `redis+sentinel://` (whose hosts are a
//! comma-separated list, which a URL parser refuses).

/// A URL split at its credentials and hosts.
struct Parts<'a> {
    scheme: &'a str,
    creds: Option<&'a str>,
    hosts: &'a str,
    rest: &'a str,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Self> {
        let (scheme, after) = url.split_once("://")?;
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        let (creds, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        Some(Self {
            scheme,
            creds,
            hosts,
            rest,
        })
    }

    fn join(&self, creds: Option<&str>, hosts: &str) -> String {
        match creds {
            Some(c) => format!("{}://{c}@{hosts}{}", self.scheme, self.rest),
            None => format!("{}://{hosts}{}", self.scheme, self.rest),
        }
    }
}

/// `url` with its password (if any) shown as `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some(p) = Parts::of(url) else {
        return url.to_string();
    };
    match p.creds.and_then(|c| c.split_once(':')) {
        Some((user, _)) => p.join(Some(&format!("{user}:***")), p.hosts),
        None => url.to_string(),
    }
}

/// `url` pointed at `host_port` instead, with the same scheme, credentials,
/// database and options.
pub fn with_host(url: &str, host_port: &str) -> String {
    match Parts::of(url) {
        Some(p) => p.join(p.creds, host_port),
        None => format!("redis://{host_port}"),
    }
}

/// The hosts part of `url` (`127.0.0.1:6379`, or a Sentinel list), as a
/// short label.
pub fn hosts(url: &str) -> &str {
    Parts::of(url).map_or(url, |p| p.hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_password_only() {
        assert_eq!(
            redact("redis://alice:s3cret@db:6379/2"),
            "redis://alice:***@db:6379/2"
        );
        assert_eq!(redact("rediss://:pw@db:6380"), "rediss://:***@db:6380");
        assert_eq!(
            redact("redis+sentinel://u:p@h1:26379,h2:26379/baton"),
            "redis+sentinel://u:***@h1:26379,h2:26379/baton"
        );
        assert_eq!(redact("redis://alice@db:6379"), "redis://alice@db:6379");
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn moves_to_another_host_keeping_the_rest() {
        assert_eq!(
            with_host("rediss://u:p@seed:7000/0?protocol=resp3", "10.0.0.2:7001"),
            "rediss://u:p@10.0.0.2:7001/0?protocol=resp3"
        );
        assert_eq!(
            with_host("redis://seed:7000", "127.0.0.1:7002"),
            "redis://127.0.0.1:7002"
        );
        assert_eq!(
            with_host("redis://seed:7000/#insecure", "n:1"),
            "redis://n:1/#insecure"
        );
    }

    #[test]
    fn labels_by_hosts() {
        assert_eq!(hosts("redis://u:p@db:6379/1"), "db:6379");
        assert_eq!(hosts("redis+sentinel://a:1,b:2/m"), "a:1,b:2");
    }
}
