//! The Lua scripts: every cluster-wide decision, each one atomic step in Redis.
//!
//! Redis runs a script alone: no other client's command runs between two of its commands.
//! So "is this the user's first connection anywhere?", "add them to the member list" and "tell
//! every node that has subscribers" are one step, and two nodes can never both decide that a
//! user arrived, or both miss that they left. Every script takes the key prefix and the calling
//! node's id as `ARGV[1]` and `ARGV[2]`; the rest of its arguments are listed above it. Keys
//! are built inside the scripts, so they are not declared in `KEYS`: ringcast needs a single
//! Redis (or a primary with replicas), not a Redis Cluster, whose slots would split a
//! channel's keys.
//!
//! The scripts fall in two groups: the workers' operations ([`ops`]: join, leave, publish,
//! sign-in, sign-out, terminate, and the API's questions) and the node's life in the cluster
//! ([`life`]: register, re-assert, settle, heartbeat with the reaper, goodbye), on the helpers
//! of [`common`].
//!
//! # Answers
//!
//! An operation script answers an integer: what it decided (JOIN: 1 accepted, 0 refused by a
//! full presence channel; the others 1), or [`NOT_REGISTERED`] / [`ALREADY`] when its guard
//! stopped it. The decisions themselves (a member's first join and last leave, a channel's
//! first and last subscriber, a user coming online or going offline) are what the scripts
//! write into the inboxes, in the same step; a script answer never carries an event. The one
//! thing an answer carries is webhooks: a JOIN or LEAVE that decided some answers `{1, codes…}`
//! ([`HOOK_CODES`]) instead of 1, and the calling node sends them (`crate::webhook`); the
//! reaper's go back in HEARTBEAT's answer to the survivor that reaped, and HOOKFIRE fires the
//! departures whose 3 s passed.
//!
//! `subscription_count` is throttled as on a lone node: on a channel with more than 100
//! subscriptions it goes out at most every 5 seconds (`{P}:cthr:{app}:{ch}`, a `PX` key), and a
//! change within the window is remembered in `{P}:cdirty` and sent by the next heartbeat of any
//! node once the window has passed.
//!
//! Frames are built by the calling node (the event JSON and its WebSocket header) and only
//! copied by the scripts, except the ones whose content only the script knows: the number of
//! a `subscription_count` (the node passes the JSON before and after it), and the events the
//! reaper sends for a node that is gone. [`common::COMMON`]'s `wsframe` adds the header (an
//! unmasked text frame, RFC 6455 section 5.2) and its `jstr` the JSON strings; the tests
//! compare both with the protocol crate's encoder.

pub mod common;
pub mod life;
pub mod ops;

pub use common::{ALREADY, COMMON, NOT_REGISTERED, REAP_BUDGET};
pub use life::{ASSERT, GOODBYE, HEARTBEAT, REGISTER, SETTLE};
pub use ops::{
    HOOK_CODES, HOOK_FLAGS, HOOKFIRE, JOIN, LEAVE, PUBLISH, QUERY, SIGNIN, SIGNOUT, TERMINATE,
};

/// One of the scripts, loaded once per connection with `SCRIPT LOAD` and called by its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptId {
    Join,
    Leave,
    Publish,
    Signin,
    Signout,
    Terminate,
    Query,
    Register,
    Assert,
    Settle,
    Heartbeat,
    Goodbye,
    HookFire,
}

impl ScriptId {
    /// Every script.
    pub const ALL: [ScriptId; 13] = [
        ScriptId::Join,
        ScriptId::Leave,
        ScriptId::Publish,
        ScriptId::Signin,
        ScriptId::Signout,
        ScriptId::Terminate,
        ScriptId::Query,
        ScriptId::Register,
        ScriptId::Assert,
        ScriptId::Settle,
        ScriptId::Heartbeat,
        ScriptId::Goodbye,
        ScriptId::HookFire,
    ];

    fn body(self) -> &'static str {
        match self {
            ScriptId::Join => JOIN,
            ScriptId::Leave => LEAVE,
            ScriptId::Publish => PUBLISH,
            ScriptId::Signin => SIGNIN,
            ScriptId::Signout => SIGNOUT,
            ScriptId::Terminate => TERMINATE,
            ScriptId::Query => QUERY,
            ScriptId::Register => REGISTER,
            ScriptId::Assert => ASSERT,
            ScriptId::Settle => SETTLE,
            ScriptId::Heartbeat => HEARTBEAT,
            ScriptId::Goodbye => GOODBYE,
            ScriptId::HookFire => HOOKFIRE,
        }
    }
}

/// The scripts' code with their hashes.
#[derive(Debug)]
pub struct Scripts {
    code: Vec<String>,
    hashes: Vec<String>,
}

impl Default for Scripts {
    fn default() -> Self {
        let code: Vec<String> = ScriptId::ALL
            .iter()
            .map(|id| format!("{COMMON}{}", id.body()))
            .collect();
        let hashes = code
            .iter()
            .map(|c| redis::Script::new(c).get_hash().to_string())
            .collect();
        Scripts { code, hashes }
    }
}

impl Scripts {
    /// The `EVALSHA` of script `id` with no keys, to which the caller adds its arguments.
    pub fn call(&self, id: ScriptId, prefix: &str, node: &str) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(&self.hashes[id as usize])
            .arg(0)
            .arg(prefix)
            .arg(node);
        c
    }

    /// Loads every script into the connected Redis (again after a restart emptied its cache).
    pub fn load(&self, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for code in &self.code {
            pipe.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        pipe.exec(con)
    }
}
