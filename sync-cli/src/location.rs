//! Where a sync goes: a local path, `[user@]host:path`, or `ssh://[user@]host[:port]/path`.
//!
//! As in rsync, a colon before the first slash makes an argument remote (`./a:b` is local).
//! IPv6 literals go in brackets (`[::1]:dir`, `ssh://[::1]:2222/dir`).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Remote(RemoteLocation),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLocation {
    pub user: Option<String>,
    /// Without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Relative paths are under the remote home; empty means the home itself.
    pub path: String,
}

impl Location {
    pub fn parse(arg: &str) -> Result<Location, String> {
        if let Some(rest) = arg.strip_prefix("ssh://") {
            return parse_url(rest, arg).map(Location::Remote);
        }
        let colon = match arg.find(':') {
            Some(c) if !arg[..c].contains('/') || arg.starts_with('[') => c,
            _ => return Ok(Location::Local(PathBuf::from(arg))),
        };
        let (user, hostpart) = split_user(&arg[..colon], arg)?;
        let (host, path) = if hostpart.starts_with('[') {
            // `[v6]:path`: the colon found above is inside the brackets; the host ends at `]`.
            let open = arg.find('[').unwrap_or(0);
            let close = arg
                .find(']')
                .ok_or_else(|| format!("{arg}: unclosed '['"))?;
            let path = arg[close + 1..]
                .strip_prefix(':')
                .ok_or_else(|| format!("{arg}: expected ':' after ']'"))?;
            (arg[open + 1..close].to_string(), path)
        } else {
            (hostpart.to_string(), &arg[colon + 1..])
        };
        if host.is_empty() {
            return Err(format!("{arg}: missing host name"));
        }
        Ok(Location::Remote(RemoteLocation {
            user,
            host,
            port: None,
            path: home_relative(path),
        }))
    }
}

fn split_user<'a>(s: &'a str, arg: &str) -> Result<(Option<String>, &'a str), String> {
    match s.rfind('@') {
        Some(0) => Err(format!("{arg}: empty user name")),
        Some(at) => Ok((Some(s[..at].to_string()), &s[at + 1..])),
        None => Ok((None, s)),
    }
}

fn parse_url(rest: &str, arg: &str) -> Result<RemoteLocation, String> {
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let (user, hostport) = split_user(authority, arg)?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']').ok_or_else(|| format!("{arg}: unclosed '['"))?;
        let port = v6[close + 1..].strip_prefix(':');
        (v6[..close].to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("{arg}: invalid port {p:?}"))
        })
        .transpose()?;
    if host.is_empty() {
        return Err(format!("{arg}: missing host name"));
    }
    // In a URL the path is absolute, except `/~/x`, which is under the home (as in git).
    let path = match path.strip_prefix("/~") {
        Some(rest) => home_relative(rest.trim_start_matches('/')),
        None => path.to_string(),
    };
    Ok(RemoteLocation {
        user,
        host,
        port,
        path,
    })
}

/// `~/x` and `x` both mean `x` under the remote home.
fn home_relative(path: &str) -> String {
    match path {
        "~" => String::new(),
        p => p.strip_prefix("~/").unwrap_or(p).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> Location {
        Location::Remote(RemoteLocation {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    #[test]
    fn rsync_style_destinations() {
        let cases = [
            ("dir", Location::Local("dir".into())),
            ("./a:b", Location::Local("./a:b".into())),
            ("/abs/x:y", Location::Local("/abs/x:y".into())),
            ("vm:src", remote(None, "vm", None, "src")),
            ("me@vm:/srv/x", remote(Some("me"), "vm", None, "/srv/x")),
            ("vm:", remote(None, "vm", None, "")),
            ("vm:~/x", remote(None, "vm", None, "x")),
            ("[::1]:d", remote(None, "::1", None, "d")),
            ("me@[fe80::1]:/d", remote(Some("me"), "fe80::1", None, "/d")),
        ];
        for (arg, want) in cases {
            assert_eq!(Location::parse(arg).unwrap(), want, "{arg}");
        }
    }

    #[test]
    fn ssh_urls() {
        let cases = [
            ("ssh://vm/srv", remote(None, "vm", None, "/srv")),
            (
                "ssh://me@vm:2222/srv/x",
                remote(Some("me"), "vm", Some(2222), "/srv/x"),
            ),
            ("ssh://[::1]:2222/d", remote(None, "::1", Some(2222), "/d")),
            ("ssh://vm/~/code", remote(None, "vm", None, "code")),
            ("ssh://vm", remote(None, "vm", None, "")),
        ];
        for (arg, want) in cases {
            assert_eq!(Location::parse(arg).unwrap(), want, "{arg}");
        }
    }

    #[test]
    fn malformed_destinations_name_the_problem() {
        for (arg, want) in [
            ("ssh://vm:port/x", "invalid port"),
            (":x", "missing host"),
            ("@vm:x", "empty user"),
            ("[::1:x", "unclosed"),
            ("ssh:///x", "missing host"),
        ] {
            let err = Location::parse(arg).unwrap_err();
            assert!(err.contains(want), "{arg}: {err}");
        }
    }
}
