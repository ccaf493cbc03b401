//! Who is connected, and the connection commands: `AUTH`, `HELLO`, `CLIENT ...`.
//!
//! Each connection owns its [`Session`] (protocol, authentication, subscriptions). What other
//! connections may see or do to it (`CLIENT LIST`, `CLIENT KILL`) lives in its [`ClientShared`],
//! registered in the [`Registry`]; a connection updates it once per batch of requests, never
//! per command, so the hot path takes no lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::config::UserRole;
use crate::engine::Instant;
use crate::engine::time::duration_millis;
use crate::wire::resp::{Protocol, ReplyWriter};

use super::command::{Args, Op, Shown, Step};
use super::pubsub::Subscriptions;
use super::{Port, REDIS_VERSION};

/// `-NOAUTH` for any command but `AUTH`, `HELLO` and `QUIT` before authentication.
pub(super) const NOAUTH: &str = "NOAUTH Authentication required.";
/// A wrong user name or password.
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// `AUTH <password>` when no password is configured.
const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the \
                           default user. Are you sure your configuration is correct?";
/// `HELLO` without credentials on a connection that must authenticate.
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, \
                            otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                            authenticate the client and select the RESP protocol version at the \
                            same time";

/// A password of the port, compared in constant time and never printed.
#[derive(Clone, Eq, PartialEq)]
pub struct Password(String);

impl Password {
    /// Wraps `password`.
    #[must_use]
    pub fn new(password: &str) -> Self {
        Self(password.to_owned())
    }

    /// Whether `given` is this password.
    fn matches(&self, given: &[u8]) -> bool {
        same_secret(given, self.0.as_bytes())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A `[[user]]` of the port.
#[derive(Clone, Debug)]
pub struct PortUser {
    /// The name given to `AUTH` and `HELLO ... AUTH`.
    pub name: String,
    /// Its password.
    pub password: Password,
    /// What it may do.
    pub role: UserRole,
}

/// Who a connection authenticated as.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(super) struct Identity {
    /// The user name (`default` for `requirepass`, or a port without passwords).
    pub(super) name: String,
    /// What it may do.
    pub(super) role: UserRole,
}

impl Identity {
    fn default_user() -> Self {
        Self { name: "default".to_owned(), role: UserRole::Admin }
    }
}

/// Redis's refusal of a command the user's role does not allow.
pub(super) fn no_permission(full_name: &str, w: &mut ReplyWriter<'_>) {
    w.error_fmt(format_args!(
        "NOPERM this user has no permissions to run the '{full_name}' command"
    ));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What `CLIENT LIST` shows of a connection, and how to close it from another.
#[derive(Debug)]
pub(super) struct ClientShared {
    /// `CLIENT ID`.
    pub(super) id: u64,
    /// The client's address.
    pub(super) addr: SocketAddr,
    /// The local address it connected to.
    pub(super) laddr: SocketAddr,
    /// When it connected.
    pub(super) created_at: Instant,
    /// What changes while it is connected.
    meta: Mutex<Meta>,
    /// Notified by `CLIENT KILL`.
    pub(super) kill: Notify,
}

/// The changing part of [`ClientShared`].
#[derive(Debug)]
pub(super) struct Meta {
    /// `CLIENT SETNAME`.
    pub(super) name: String,
    /// `CLIENT SETINFO LIB-NAME`.
    pub(super) lib_name: String,
    /// `CLIENT SETINFO LIB-VER`.
    pub(super) lib_ver: String,
    /// The user it authenticated as (`default` until it does).
    pub(super) user: String,
    /// 2 or 3.
    pub(super) resp: u8,
    /// Channels subscribed.
    pub(super) subs: usize,
    /// Patterns subscribed.
    pub(super) psubs: usize,
    /// The last command run.
    pub(super) last_cmd: &'static str,
    /// When the last request arrived.
    pub(super) last_active: Instant,
}

impl ClientShared {
    /// The changing part, locked.
    pub(super) fn meta(&self) -> MutexGuard<'_, Meta> {
        lock(&self.meta)
    }

    /// One line of `CLIENT LIST` (Redis 7.2's fields, without the final newline). Buffer sizes
    /// are not tracked per client and show as 0.
    fn describe(&self, now: Instant, out: &mut String) {
        let meta = self.meta();
        let age = now.saturating_since(self.created_at).as_secs();
        let idle = now.saturating_since(meta.last_active).as_secs();
        let flags = if meta.subs + meta.psubs > 0 { "P" } else { "N" };
        let _ = write!(
            out,
            "id={} addr={} laddr={} fd=-1 name={} age={age} idle={idle} flags={flags} db=0 \
             sub={} psub={} ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 \
             rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} \
             lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            meta.name,
            meta.subs,
            meta.psubs,
            meta.last_cmd,
            meta.user,
            meta.resp,
            meta.lib_name,
            meta.lib_ver
        );
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub(super) struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<ClientShared>>>,
    count: AtomicUsize,
    last_id: AtomicU64,
}

impl Registry {
    /// Registers a new connection.
    pub(super) fn register(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        now: Instant,
    ) -> Arc<ClientShared> {
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let client = Arc::new(ClientShared {
            id,
            addr,
            laddr,
            created_at: now,
            meta: Mutex::new(Meta {
                name: String::new(),
                lib_name: String::new(),
                lib_ver: String::new(),
                user: "default".to_owned(),
                resp: 2,
                subs: 0,
                psubs: 0,
                last_cmd: "NULL",
                last_active: now,
            }),
            kill: Notify::new(),
        });
        lock(&self.clients).insert(id, Arc::clone(&client));
        self.count.fetch_add(1, Ordering::Relaxed);
        client
    }

    /// Forgets a closed connection.
    pub(super) fn unregister(&self, id: u64) {
        if lock(&self.clients).remove(&id).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Clients connected.
    pub(super) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every client, by id.
    fn all(&self) -> Vec<Arc<ClientShared>> {
        lock(&self.clients).values().cloned().collect()
    }
}

/// One connection's own state.
#[derive(Debug)]
pub(super) struct Session {
    /// Its registry entry.
    pub(super) client: Arc<ClientShared>,
    /// The reply protocol.
    pub(super) proto: Protocol,
    /// Who it authenticated as; `None` until it does. A port without any password
    /// authenticates every connection as `default`, as Redis does for a `nopass` user.
    pub(super) user: Option<Identity>,
    /// Its channels and patterns.
    pub(super) subscriptions: Subscriptions,
}

impl Session {
    /// A new connection's session.
    pub(super) fn new(client: Arc<ClientShared>, port: &Port) -> Self {
        Self {
            client,
            proto: Protocol::Resp2,
            user: open_port(port).then(Identity::default_user),
            subscriptions: Subscriptions::default(),
        }
    }
}

/// Compares a password without an early exit on the first differing byte.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Whether the port has no password at all: then `default` needs none (Redis's `nopass`).
fn open_port(port: &Port) -> bool {
    port.options.requirepass.is_none() && port.options.users.is_empty()
}

/// Checks `user` (None = default) and `password`; `Err` is the error to reply.
///
/// The `default` user's password is `requirepass`. Without one it takes any password, unless
/// the port has other users, which disables it: an unauthenticated client must never get more
/// than a `read` user can do.
fn check_credentials(
    port: &Port,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<Identity, &'static str> {
    if user.is_none_or(|u| u == b"default") {
        return match &port.options.requirepass {
            Some(expected) if expected.matches(password) => Ok(Identity::default_user()),
            Some(_) => Err(WRONGPASS),
            // `AUTH <password>` alone is refused as a configuration mistake.
            None if open_port(port) && user.is_none() => Err(NO_PASSWORD),
            None if open_port(port) => Ok(Identity::default_user()),
            None => Err(WRONGPASS),
        };
    }
    port.options
        .users
        .iter()
        .find(|u| user == Some(u.name.as_bytes()) && u.password.matches(password))
        .map(|u| Identity { name: u.name.clone(), role: u.role })
        .ok_or(WRONGPASS)
}

/// Records that `session` authenticated as `identity`.
fn authenticated(session: &mut Session, identity: Identity) {
    session.client.meta().user.clone_from(&identity.name);
    session.user = Some(identity);
}

/// `AUTH [user] password`. A failed attempt leaves the connection as it was (usable, and still
/// authenticated if it was), as in Redis.
pub(super) fn auth(port: &Port, session: &mut Session, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    if args.len() > 3 {
        w.error("ERR syntax error");
        return;
    }
    let (user, password) =
        if args.len() == 2 { (None, args.get(1)) } else { (Some(args.get(1)), args.get(2)) };
    match check_credentials(port, user, password) {
        Ok(identity) => {
            authenticated(session, identity);
            w.simple("OK");
        }
        Err(e) => w.error(e),
    }
}

/// `HELLO [protover [AUTH user password] [SETNAME name]]`: switches the protocol and answers
/// with Sentinel's six-field server description.
pub(super) fn hello(port: &Port, session: &mut Session, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    let mut proto = session.proto;
    if args.len() >= 2 {
        match std::str::from_utf8(args.get(1)).ok().and_then(|t| t.parse::<i64>().ok()) {
            None => return w.error("ERR Protocol version is not an integer or out of range"),
            Some(2) => proto = Protocol::Resp2,
            Some(3) => proto = Protocol::Resp3,
            Some(_) => return w.error("NOPROTO unsupported protocol version"),
        }
    }
    let mut credentials = None;
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args.is(i, "AUTH") && more >= 2 {
            credentials = Some((args.get(i + 1), args.get(i + 2)));
            i += 3;
        } else if args.is(i, "SETNAME") && more >= 1 {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            w.error_fmt(format_args!(
                "ERR Syntax error in HELLO option '{}'",
                Shown(args.get(i), 128)
            ));
            return;
        }
    }
    if let Some((user, password)) = credentials {
        match check_credentials(port, Some(user), password) {
            Ok(identity) => authenticated(session, identity),
            Err(e) => return w.error(e),
        }
    }
    if session.user.is_none() {
        return w.error(HELLO_NOAUTH);
    }
    if let Some(name) = name {
        if !valid_attribute(name) {
            return w
                .error("ERR Client names cannot contain spaces, newlines or special characters.");
        }
        session.client.meta().name = String::from_utf8_lossy(name).into_owned();
    }
    session.proto = proto;
    session.client.meta().resp = if proto == Protocol::Resp3 { 3 } else { 2 };
    w.set_protocol(proto);
    w.map(6);
    w.bulk_str("server");
    w.bulk_str("redis");
    w.bulk_str("version");
    w.bulk_str(REDIS_VERSION);
    w.bulk_str("proto");
    w.integer(if proto == Protocol::Resp3 { 3 } else { 2 });
    w.bulk_str("id");
    w.integer(i64::try_from(session.client.id).unwrap_or(i64::MAX));
    w.bulk_str("mode");
    w.bulk_str("sentinel");
    w.bulk_str("modules");
    w.array(0);
}

/// Client names and library attributes: printable ASCII without spaces (Redis's rule).
fn valid_attribute(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// `CLIENT <subcommand> ...`.
pub(super) fn client(
    port: &Port,
    session: &mut Session,
    op: Op,
    args: Args<'_>,
    now: Instant,
    w: &mut ReplyWriter<'_>,
) -> Step {
    if matches!(op, Op::ClientInfo | Op::ClientList) {
        // These show the command running now, as Redis does.
        let full_name = if op == Op::ClientInfo { "client|info" } else { "client|list" };
        session.client.meta().last_cmd = full_name;
    }
    match op {
        Op::ClientId => w.integer(i64::try_from(session.client.id).unwrap_or(i64::MAX)),
        Op::ClientGetName => {
            let meta = session.client.meta();
            if meta.name.is_empty() { w.null_bulk() } else { w.bulk_str(&meta.name) }
        }
        Op::ClientSetName => {
            let name = args.get(2);
            if valid_attribute(name) {
                session.client.meta().name = String::from_utf8_lossy(name).into_owned();
                w.simple("OK");
            } else {
                w.error("ERR Client names cannot contain spaces, newlines or special characters.");
            }
        }
        Op::ClientSetInfo => set_info(session, args, w),
        Op::ClientInfo => {
            let mut line = String::new();
            session.client.describe(now, &mut line);
            line.push('\n');
            w.verbatim(*b"txt", line.as_bytes());
        }
        Op::ClientList => return list(port, args, now, w),
        Op::ClientKill => return kill(port, session, args, w),
        Op::ClientHelp => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are: ID <client-id>, TYPE (NORMAL|PUBSUB),",
                "    USER <username>, ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO),",
                "    MAXAGE <seconds>.",
                "LIST [options ...]",
                "    Return information about client connections. Options: TYPE (NORMAL|PUBSUB),",
                "    ID <client-id> [<client-id> ...].",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client meta attributes.",
                "HELP",
                "    Print this help.",
            ];
            w.array(lines.len());
            for line in lines {
                w.simple(line);
            }
        }
        _ => {}
    }
    Step::Next
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`, accepted as Redis 7.2 does because client libraries
/// send it on every connection.
fn set_info(session: &Session, args: Args<'_>, w: &mut ReplyWriter<'_>) {
    let value = args.get(3);
    let lib_name = args.is(2, "lib-name");
    if !lib_name && !args.is(2, "lib-ver") {
        return w.error_fmt(format_args!("ERR Unrecognized option '{}'", Shown(args.get(2), 128)));
    }
    if !valid_attribute(value) {
        return w.error_fmt(format_args!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            Shown(args.get(2), 128)
        ));
    }
    let value = String::from_utf8_lossy(value).into_owned();
    let mut meta = session.client.meta();
    if lib_name {
        meta.lib_name = value;
    } else {
        meta.lib_ver = value;
    }
    drop(meta);
    w.simple("OK");
}

/// Client types of `CLIENT LIST TYPE` and `CLIENT KILL TYPE`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Kind {
    Normal,
    PubSub,
    /// `master`, `replica`, `slave`: valid words, but no client of this port is one.
    Replication,
}

fn kind(word: &[u8]) -> Option<Kind> {
    match word.to_ascii_lowercase().as_slice() {
        b"normal" => Some(Kind::Normal),
        b"pubsub" => Some(Kind::PubSub),
        b"master" | b"replica" | b"slave" => Some(Kind::Replication),
        _ => None,
    }
}

fn kind_of(client: &ClientShared) -> Kind {
    let meta = client.meta();
    if meta.subs + meta.psubs > 0 { Kind::PubSub } else { Kind::Normal }
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
fn list(port: &Port, args: Args<'_>, now: Instant, w: &mut ReplyWriter<'_>) -> Step {
    let mut only_kind = None;
    let mut only_ids: Option<Vec<u64>> = None;
    if args.len() == 4 && args.is(2, "type") {
        match kind(args.get(3)) {
            Some(k) => only_kind = Some(k),
            None => {
                w.error_fmt(format_args!("ERR Unknown client type '{}'", Shown(args.get(3), 128)));
                return Step::Next;
            }
        }
    } else if args.len() >= 4 && args.is(2, "id") {
        let mut ids = Vec::new();
        for arg in args.from(3) {
            match std::str::from_utf8(arg).ok().and_then(|t| t.parse::<u64>().ok()) {
                Some(id) if id > 0 => ids.push(id),
                _ => {
                    w.error("ERR Invalid client ID");
                    return Step::Next;
                }
            }
        }
        only_ids = Some(ids);
    } else if args.len() != 2 {
        w.error("ERR syntax error");
        return Step::Next;
    }
    let mut text = String::new();
    for client in port.registry.all() {
        if only_kind.is_some_and(|k| k != kind_of(&client))
            || only_ids.as_ref().is_some_and(|ids| !ids.contains(&client.id))
        {
            continue;
        }
        client.describe(now, &mut text);
        text.push('\n');
    }
    w.verbatim(*b"txt", text.as_bytes());
    Step::Next
}

/// `CLIENT KILL ip:port` (replies `+OK`) or `CLIENT KILL <filter> <value> ...` (replies the
/// number of clients killed). Killing itself closes this connection after the reply.
fn kill(port: &Port, session: &Session, args: Args<'_>, w: &mut ReplyWriter<'_>) -> Step {
    #[derive(Default)]
    struct Filter {
        id: Option<u64>,
        addr: Option<String>,
        laddr: Option<String>,
        kind: Option<Kind>,
        user: Option<String>,
        max_age: Option<u64>,
    }
    let old_style = args.len() == 3;
    let mut filter = Filter::default();
    let mut skip_me = !old_style;
    if old_style {
        filter.addr = Some(args.text(2));
    } else {
        let mut i = 2;
        while i < args.len() {
            if i + 1 >= args.len() {
                w.error("ERR syntax error");
                return Step::Next;
            }
            let value = args.get(i + 1);
            let number = std::str::from_utf8(value).ok().and_then(|t| t.parse::<i64>().ok());
            if args.is(i, "id") {
                match number.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0) {
                    Some(id) => filter.id = Some(id),
                    None => {
                        w.error("ERR client-id should be greater than 0");
                        return Step::Next;
                    }
                }
            } else if args.is(i, "type") {
                match kind(value) {
                    Some(k) => filter.kind = Some(k),
                    None => {
                        w.error_fmt(format_args!(
                            "ERR Unknown client type '{}'",
                            Shown(value, 128)
                        ));
                        return Step::Next;
                    }
                }
            } else if args.is(i, "addr") {
                filter.addr = Some(args.text(i + 1));
            } else if args.is(i, "laddr") {
                filter.laddr = Some(args.text(i + 1));
            } else if args.is(i, "user") {
                filter.user = Some(args.text(i + 1));
            } else if args.is(i, "skipme") {
                if value.eq_ignore_ascii_case(b"yes") {
                    skip_me = true;
                } else if value.eq_ignore_ascii_case(b"no") {
                    skip_me = false;
                } else {
                    w.error("ERR syntax error");
                    return Step::Next;
                }
            } else if args.is(i, "maxage") {
                match number.and_then(|n| u64::try_from(n).ok()) {
                    Some(age) => filter.max_age = Some(age),
                    None => {
                        w.error("ERR value is not an integer or out of range");
                        return Step::Next;
                    }
                }
            } else {
                w.error("ERR syntax error");
                return Step::Next;
            }
            i += 2;
        }
    }
    let now = port.hub.clock.now();
    let mut killed = 0;
    let mut me = false;
    for client in port.registry.all() {
        let matches = filter.user.as_ref().is_none_or(|u| *u == client.meta().user)
            && filter.id.is_none_or(|id| id == client.id)
            && filter.addr.as_ref().is_none_or(|a| *a == client.addr.to_string())
            && filter.laddr.as_ref().is_none_or(|a| *a == client.laddr.to_string())
            && filter.kind.is_none_or(|k| k == kind_of(&client))
            && filter.max_age.is_none_or(|age| {
                duration_millis(now.saturating_since(client.created_at)) / 1000 >= age
            });
        if !matches || (skip_me && client.id == session.client.id) {
            continue;
        }
        killed += 1;
        if client.id == session.client.id {
            me = true;
        } else {
            client.kill.notify_one();
        }
    }
    if old_style {
        if killed == 0 {
            w.error("ERR No such client");
        } else {
            w.simple("OK");
        }
    } else {
        w.integer(killed);
    }
    if me { Step::Close } else { Step::Next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn attributes_are_printable_ascii_without_spaces() {
        assert!(valid_attribute(b"redis-py"));
        assert!(valid_attribute(b""));
        assert!(!valid_attribute(b"a b"));
        assert!(!valid_attribute(b"a\nb"));
        assert!(!valid_attribute("é".as_bytes()));
    }
}
