//! Who a connection says it is: presence `channel_data` and sign-in `user_data`.
//!
//! Both arrive as JSON documents inside JSON strings, written by the application's auth
//! endpoint and covered by its signature. The signature is checked over the string as
//! received ([`super::auth`]); only then is the string read here. Member data is re-serialized
//! compactly so that what is stored and sent to other members is bounded and well formed, and
//! user ids are kept as strings because membership is compared by id and clients send both
//! `10` and `"10"`.

use simd_json::Node;
use simd_json::prelude::ValueAsScalar as _;

use super::json;
use crate::Limits;

/// A presence channel member, from `channel_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceMember {
    /// The user id; a number in `channel_data` is kept as its decimal text.
    pub user_id: String,
    /// `user_info` as compact JSON, `"null"` when absent.
    pub user_info: String,
}

/// A signed-in user, from `pusher:signin`'s `user_data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserData {
    /// The user id (a non-empty string, as pusher-js requires).
    pub id: String,
    /// `user_info` as compact JSON, if present.
    pub user_info: Option<String>,
    /// Ids whose online status the user follows, at most `limits.max_watchlist`.
    pub watchlist: Vec<String>,
    /// Whether the watchlist was cut to `limits.max_watchlist`; the sign-in still succeeds and
    /// the client is told with 4302.
    pub watchlist_truncated: bool,
}

/// Why `channel_data` or `user_data` was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MemberError {
    /// Not valid JSON.
    #[error("Invalid user data: not valid JSON")]
    InvalidJson,
    /// Valid JSON but not an object.
    #[error("Invalid user data: not a JSON object")]
    NotAnObject,
    /// No user id (`user_id` in `channel_data`, `id` in `user_data`).
    #[error("Invalid user data: missing \"{0}\"")]
    MissingUserId(&'static str),
    /// The user id has the wrong type or is empty.
    #[error("Invalid user data: \"{0}\" must be a non-empty string or an integer")]
    InvalidUserId(&'static str),
    /// The user id is longer than `limits.max_user_id_len`.
    #[error("Invalid user data: user id of {len} characters, at most {max} allowed")]
    UserIdTooLong {
        /// Characters in the id.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `user_info` is larger than `limits.max_user_info_bytes`.
    #[error("Invalid user data: user_info of {len} bytes, at most {max} allowed")]
    UserInfoTooLarge {
        /// Bytes of compact JSON.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `watchlist` is not an array of strings.
    #[error("Invalid user data: \"watchlist\" must be an array of strings")]
    InvalidWatchlist,
}

impl MemberError {
    /// The `status` of the `pusher:subscription_error` sent when a presence subscription
    /// carries this error: 413 for an oversized `user_info`, else 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::UserInfoTooLarge { .. } => 413,
            Self::InvalidJson
            | Self::NotAnObject
            | Self::MissingUserId(_)
            | Self::InvalidUserId(_)
            | Self::UserIdTooLong { .. }
            | Self::InvalidWatchlist => 400,
        }
    }

    /// The Pusher code of the `pusher:error` sent when a sign-in carries this error: 4009,
    /// "Connection is unauthorized", as for a bad signature.
    pub fn pusher_code(&self) -> u16 {
        super::error::PusherCode::Unauthorized.code()
    }
}

/// Reads presence `channel_data`.
///
/// Pusher docs: `channel_data` is a JSON object with a `user_id` (string or number) and an
/// optional `user_info`; user ids are limited to 128 characters and the user object to 1 KB
/// (`limits.max_user_id_len`, `limits.max_user_info_bytes`).
pub fn parse_channel_data(s: &str, limits: &Limits) -> Result<PresenceMember, MemberError> {
    json::with_parsed(s, |nodes| {
        object(nodes)?;
        let user_id =
            json::object_get(nodes, "user_id").ok_or(MemberError::MissingUserId("user_id"))?;
        let user_id = match user_id.first() {
            Some(Node::String(s)) if !s.is_empty() => (*s).to_owned(),
            Some(Node::Static(n)) if n.as_f64().is_none() => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.to_string(),
                (None, Some(u)) => u.to_string(),
                (None, None) => return Err(MemberError::InvalidUserId("user_id")),
            },
            _ => return Err(MemberError::InvalidUserId("user_id")),
        };
        check_id_len(&user_id, limits)?;
        let user_info = user_info(nodes, limits)?.unwrap_or_else(|| "null".to_owned());
        Ok(PresenceMember { user_id, user_info })
    })
    .unwrap_or(Err(MemberError::InvalidJson))
}

/// Reads sign-in `user_data`.
///
/// Pusher docs: `user_data` must have an `id` (a non-empty string; pusher-js refuses anything
/// else), and may have `user_info` and a `watchlist` of user ids, of which the first 100
/// (`limits.max_watchlist`) are kept.
pub fn parse_user_data(s: &str, limits: &Limits) -> Result<UserData, MemberError> {
    json::with_parsed(s, |nodes| {
        object(nodes)?;
        let id = match json::object_get(nodes, "id").and_then(<[_]>::first) {
            None => return Err(MemberError::MissingUserId("id")),
            Some(Node::String(s)) if !s.is_empty() => (*s).to_owned(),
            Some(_) => return Err(MemberError::InvalidUserId("id")),
        };
        check_id_len(&id, limits)?;
        let user_info = user_info(nodes, limits)?;
        let mut watchlist = Vec::new();
        let mut watchlist_truncated = false;
        let list = json::object_get(nodes, "watchlist").unwrap_or_default();
        match list.first() {
            // Absent, or `"watchlist": null`: no watchlist.
            None => {}
            Some(Node::Static(n)) if n.as_null().is_some() => {}
            Some(Node::Array { .. }) => {
                for node in list.iter().skip(1) {
                    let Node::String(id) = node else {
                        return Err(MemberError::InvalidWatchlist);
                    };
                    if watchlist.len() == limits.max_watchlist {
                        watchlist_truncated = true;
                    } else {
                        watchlist.push((*id).to_owned());
                    }
                }
            }
            Some(_) => return Err(MemberError::InvalidWatchlist),
        }
        Ok(UserData {
            id,
            user_info,
            watchlist,
            watchlist_truncated,
        })
    })
    .unwrap_or(Err(MemberError::InvalidJson))
}

fn object(nodes: &[Node<'_>]) -> Result<(), MemberError> {
    match nodes.first() {
        Some(Node::Object { .. }) => Ok(()),
        _ => Err(MemberError::NotAnObject),
    }
}

fn check_id_len(id: &str, limits: &Limits) -> Result<(), MemberError> {
    let len = id.chars().count();
    if len > limits.max_user_id_len {
        return Err(MemberError::UserIdTooLong {
            len,
            max: limits.max_user_id_len,
        });
    }
    Ok(())
}

fn user_info(nodes: &[Node<'_>], limits: &Limits) -> Result<Option<String>, MemberError> {
    let Some(value) = json::object_get(nodes, "user_info") else {
        return Ok(None);
    };
    let info = json::value_to_string(value);
    if info.len() > limits.max_user_info_bytes {
        return Err(MemberError::UserInfoTooLarge {
            len: info.len(),
            max: limits.max_user_info_bytes,
        });
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(s: &str) -> Result<PresenceMember, MemberError> {
        parse_channel_data(s, &Limits::default())
    }

    fn user(s: &str) -> Result<UserData, MemberError> {
        parse_user_data(s, &Limits::default())
    }

    #[test]
    fn channel_data() {
        let m = member(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap();
        assert_eq!(m.user_id, "10");
        assert_eq!(m.user_info, r#"{"name":"Mr. Channels"}"#);
        let m = member(r#"{ "user_id" : "abc" }"#).unwrap();
        assert_eq!((m.user_id.as_str(), m.user_info.as_str()), ("abc", "null"));
        assert_eq!(
            member(r#"{"user_id":-3,"user_info":[1, "x"]}"#)
                .unwrap()
                .user_id,
            "-3"
        );
        assert_eq!(
            member(r#"{"user_id":18446744073709551615}"#)
                .unwrap()
                .user_id,
            "18446744073709551615"
        );
        assert_eq!(
            member(r#"{"user_id":"a","user_info":"s"}"#)
                .unwrap()
                .user_info,
            r#""s""#
        );
    }

    #[test]
    fn channel_data_errors() {
        assert_eq!(member(""), Err(MemberError::InvalidJson));
        assert_eq!(member("{"), Err(MemberError::InvalidJson));
        assert_eq!(member("[]"), Err(MemberError::NotAnObject));
        assert_eq!(member("{}"), Err(MemberError::MissingUserId("user_id")));
        for bad in [r#""""#, "1.5", "null", "true", "[1]", "{}"] {
            let s = format!(r#"{{"user_id":{bad}}}"#);
            assert_eq!(
                member(&s),
                Err(MemberError::InvalidUserId("user_id")),
                "{s}"
            );
        }
        let long = format!(r#"{{"user_id":"{}"}}"#, "é".repeat(129));
        assert_eq!(
            member(&long),
            Err(MemberError::UserIdTooLong { len: 129, max: 128 })
        );
        assert!(member(&format!(r#"{{"user_id":"{}"}}"#, "é".repeat(128))).is_ok());
        let big = format!(r#"{{"user_id":1,"user_info":"{}"}}"#, "x".repeat(1023));
        assert_eq!(
            member(&big),
            Err(MemberError::UserInfoTooLarge {
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(
            MemberError::UserInfoTooLarge { len: 1, max: 0 }.status(),
            413
        );
        assert_eq!(MemberError::NotAnObject.status(), 400);
        assert_eq!(MemberError::NotAnObject.pusher_code(), 4009);
    }

    #[test]
    fn user_data() {
        let u = user(r#"{"id":"12345"}"#).unwrap();
        assert_eq!(
            u,
            UserData {
                id: "12345".into(),
                user_info: None,
                watchlist: vec![],
                watchlist_truncated: false
            }
        );
        let u = user(r#"{"id":"1","user_info":{"a": 1},"watchlist":["2","3"]}"#).unwrap();
        assert_eq!(u.user_info.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(u.watchlist, ["2", "3"]);
        assert!(
            user(r#"{"id":"1","watchlist":null}"#)
                .unwrap()
                .watchlist
                .is_empty()
        );
    }

    #[test]
    fn watchlist_is_truncated() {
        let ids: Vec<String> = (0..150).map(|i| format!("\"{i}\"")).collect();
        let u = user(&format!(r#"{{"id":"1","watchlist":[{}]}}"#, ids.join(","))).unwrap();
        assert_eq!(u.watchlist.len(), 100);
        assert_eq!(u.watchlist[99], "99");
        assert!(u.watchlist_truncated);
        let u = user(&format!(
            r#"{{"id":"1","watchlist":[{}]}}"#,
            ids[..100].join(",")
        ))
        .unwrap();
        assert!(!u.watchlist_truncated);
    }

    #[test]
    fn user_data_errors() {
        assert_eq!(user("nope"), Err(MemberError::InvalidJson));
        assert_eq!(user(r#""id""#), Err(MemberError::NotAnObject));
        assert_eq!(
            user(r#"{"user_id":"1"}"#),
            Err(MemberError::MissingUserId("id"))
        );
        for bad in ["12345", r#""""#, "null", "{}"] {
            let s = format!(r#"{{"id":{bad}}}"#);
            assert_eq!(user(&s), Err(MemberError::InvalidUserId("id")), "{s}");
        }
        for bad in [
            r#""1""#,
            "1",
            "true",
            "{}",
            "[1]",
            r#"[["1"]]"#,
            r#"[{"a":"b"}]"#,
        ] {
            let s = format!(r#"{{"id":"1","watchlist":{bad}}}"#);
            assert_eq!(user(&s), Err(MemberError::InvalidWatchlist), "{s}");
        }
    }
}
