//! Public key authentication: ssh-agent keys first, then `--key` files, then the default
//! `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa` and `~/.ssh/id_rsa`. Never prompts: an encrypted key
//! must be in the agent.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{MethodKind, MethodSet};

use super::known_hosts::{fingerprint, key_type_label};
use super::{ssh_error, Client, SshAgent};
use crate::error::{Error, Result};

/// The default identity files, in the order OpenSSH tries them.
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// What the caller asked for, resolved.
pub(super) struct AuthPlan<'a> {
    pub user: &'a str,
    pub peer: &'a str,
    pub agent: &'a SshAgent,
    pub explicit_keys: &'a [PathBuf],
    pub home: Option<&'a Path>,
    pub timeout: Duration,
}

/// The record of what was tried, for the error message.
#[derive(Default)]
struct Attempts {
    tried: Vec<String>,
    notes: Vec<String>,
    methods: Option<MethodSet>,
    /// Public keys already offered (so a file key that is also in the agent is not retried).
    offered: Vec<PublicKey>,
    rsa_hash: Option<Option<HashAlg>>,
}

impl Attempts {
    fn record(&mut self, result: &AuthResult) {
        if let AuthResult::Failure {
            remaining_methods, ..
        } = result
        {
            self.methods = Some(remaining_methods.clone());
        }
    }

    /// Whether the server still lets us try a public key.
    fn may_continue(&self, handle: &Handle<Client>) -> bool {
        if handle.is_closed() {
            return false;
        }
        match &self.methods {
            Some(methods) if !methods.is_empty() => methods.contains(&MethodKind::PublicKey),
            _ => true,
        }
    }
}

/// Authenticates `handle`, or explains in one line why it could not.
pub(super) async fn authenticate(handle: &mut Handle<Client>, plan: &AuthPlan<'_>) -> Result<()> {
    let mut attempts = Attempts::default();

    if let Some(mut agent) = connect_agent(plan, &mut attempts).await {
        let identities = match tokio::time::timeout(plan.timeout, agent.request_identities()).await
        {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => {
                attempts
                    .notes
                    .push(format!("ssh-agent did not list its keys: {e}"));
                Vec::new()
            }
            Err(_) => {
                attempts
                    .notes
                    .push("ssh-agent did not answer in time".to_string());
                Vec::new()
            }
        };
        if identities.is_empty() && attempts.notes.is_empty() {
            attempts.notes.push("ssh-agent holds no keys".to_string());
        }
        for identity in identities {
            let AgentIdentity::PublicKey { key, comment } = identity else {
                continue; // certificates are not offered
            };
            if !attempts.may_continue(handle) {
                break;
            }
            let hash = rsa_hash(handle, &key, &mut attempts).await;
            let label = if comment.is_empty() {
                format!("agent key {} {}", key_type_label(&key), fingerprint(&key))
            } else {
                format!(
                    "agent key {comment} ({} {})",
                    key_type_label(&key),
                    fingerprint(&key)
                )
            };
            attempts.tried.push(label);
            attempts.offered.push(key.clone());
            match handle
                .authenticate_publickey_with(plan.user, key, hash, &mut agent)
                .await
            {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(result) => attempts.record(&result),
                Err(e) => attempts
                    .notes
                    .push(format!("ssh-agent failed to sign: {e}")),
            }
        }
    }

    for (path, explicit) in key_files(plan)? {
        if !attempts.may_continue(handle) {
            break;
        }
        let key = match load_key(&path, explicit, &attempts.offered)? {
            Loaded::Key(key) => key,
            Loaded::AlreadyOffered => continue,
            Loaded::Skipped(note) => {
                attempts.notes.push(note);
                continue;
            }
        };
        let public = key.public_key().clone();
        let hash = rsa_hash(handle, &public, &mut attempts).await;
        attempts.tried.push(format!(
            "{} ({} {})",
            path.display(),
            key_type_label(&public),
            fingerprint(&public)
        ));
        attempts.offered.push(public);
        let key = PrivateKeyWithHashAlg::new(Arc::new(*key), hash);
        match handle.authenticate_publickey(plan.user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(result) => attempts.record(&result),
            Err(e) => {
                return Err(ssh_error(
                    io::ErrorKind::ConnectionAborted,
                    format!("{}: authentication failed: {e}", plan.peer),
                ))
            }
        }
    }

    Err(failure(plan, &attempts, handle.is_closed()))
}

/// The one-line error for a failed authentication.
fn failure(plan: &AuthPlan<'_>, attempts: &Attempts, closed: bool) -> Error {
    let mut message = format!("{}: permission denied", plan.peer);
    if let Some(methods) = attempts.methods.as_ref().filter(|m| !m.is_empty()) {
        let names: Vec<&str> = methods.iter().map(<&str>::from).collect();
        message.push_str(&format!(" (server accepts: {})", names.join(",")));
    }
    if attempts.tried.is_empty() {
        message.push_str("; no key to offer");
    } else {
        message.push_str(&format!("; tried {}", attempts.tried.join(", ")));
    }
    if closed {
        message.push_str("; the server closed the connection (too many authentication failures?)");
    }
    for note in &attempts.notes {
        message.push_str("; ");
        message.push_str(note);
    }
    if attempts.tried.is_empty() {
        message.push_str(
            "; start ssh-agent and ssh-add a key, or pass --key with a key the server accepts",
        );
    }
    ssh_error(io::ErrorKind::PermissionDenied, message)
}

async fn connect_agent(
    plan: &AuthPlan<'_>,
    attempts: &mut Attempts,
) -> Option<AgentClient<tokio::net::UnixStream>> {
    let socket = match plan.agent {
        SshAgent::Off => return None,
        SshAgent::Socket(path) => path.clone(),
        SshAgent::Env => match std::env::var_os("SSH_AUTH_SOCK") {
            Some(s) if !s.is_empty() => PathBuf::from(s),
            _ => {
                attempts
                    .notes
                    .push("no ssh-agent (SSH_AUTH_SOCK is not set)".to_string());
                return None;
            }
        },
    };
    match tokio::time::timeout(plan.timeout, AgentClient::connect_uds(&socket)).await {
        Ok(Ok(agent)) => Some(agent),
        Ok(Err(e)) => {
            attempts.notes.push(format!(
                "ssh-agent at {} is unreachable: {e}",
                socket.display()
            ));
            None
        }
        Err(_) => {
            attempts.notes.push(format!(
                "ssh-agent at {} did not answer in time",
                socket.display()
            ));
            None
        }
    }
}

/// The identity files to try: every `--key` (which must exist), then the defaults that exist.
fn key_files(plan: &AuthPlan<'_>) -> Result<Vec<(PathBuf, bool)>> {
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    for path in plan.explicit_keys {
        std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !files.iter().any(|(p, _)| p == path) {
            files.push((path.clone(), true));
        }
    }
    if let Some(home) = plan.home {
        for name in DEFAULT_KEYS {
            let path = home.join(".ssh").join(name);
            if path.is_file() && !files.iter().any(|(p, _)| *p == path) {
                files.push((path, false));
            }
        }
    }
    Ok(files)
}

enum Loaded {
    Key(Box<PrivateKey>),
    AlreadyOffered,
    Skipped(String),
}

/// Loads a private key without a passphrase. An encrypted key that the agent does not hold is
/// an error when it was named with `--key`, a note in the failure message otherwise.
fn load_key(path: &Path, explicit: bool, offered: &[PublicKey]) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => {
            if offered
                .iter()
                .any(|k| k.key_data() == key.public_key().key_data())
            {
                Ok(Loaded::AlreadyOffered)
            } else {
                Ok(Loaded::Key(Box::new(key)))
            }
        }
        Err(russh::keys::Error::KeyIsEncrypted) => {
            // The public half of an OpenSSH key is readable without the passphrase.
            let in_agent = PrivateKey::from_openssh(&text).is_ok_and(|k| {
                offered
                    .iter()
                    .any(|o| o.key_data() == k.public_key().key_data())
            });
            if in_agent {
                return Ok(Loaded::AlreadyOffered);
            }
            let message = format!(
                "{} is encrypted; add it to ssh-agent (ssh-add {}), azsync never asks for passphrases",
                path.display(),
                path.display()
            );
            if explicit {
                Err(Error::Config(message))
            } else {
                Ok(Loaded::Skipped(message))
            }
        }
        Err(e) => {
            let message = format!(
                "{} is not a private key azsync can read: {e}",
                path.display()
            );
            if explicit {
                Err(Error::Config(message))
            } else {
                Ok(Loaded::Skipped(message))
            }
        }
    }
}

/// For an RSA key, the best signature hash the server accepts (rsa-sha2-512 or -256; OpenSSH
/// 8.8+ refuses SHA-1 `ssh-rsa`). Asked once per connection.
async fn rsa_hash(
    handle: &Handle<Client>,
    key: &PublicKey,
    attempts: &mut Attempts,
) -> Option<HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    if let Some(hash) = attempts.rsa_hash {
        return hash;
    }
    let hash = match handle.best_supported_rsa_hash().await {
        Ok(Some(hash)) => hash,
        // No server-sig-algs: a server that old only speaks ssh-rsa, as OpenSSH assumes.
        Ok(None) | Err(_) => None,
    };
    attempts.rsa_hash = Some(hash);
    hash
}
