//! A worker's channel registry: which of this worker's connections listen on which channel.
//!
//! Each worker has its own registry and never looks at another's; a publish reaches other
//! workers' subscribers through the mesh, and each worker resolves it against its own registry.
//! Channels live in a slab; each keeps its subscribers in a dense `Vec<ConnKey>` so that a
//! fan-out walks contiguous memory. Removal is O(1) by `swap_remove`: each connection remembers
//! its position in every channel it is in, and the registry reports which subscriber moved into
//! the vacated place so that its position can be corrected.

use std::collections::HashMap;

use slab::Slab;

use super::msg;
use crate::ids::{AppIdx, ChanIdx, ConnKey};

/// One channel on one worker.
#[derive(Debug)]
pub struct Channel {
    /// The app it belongs to.
    pub app: AppIdx,
    /// Its name, shared with the messages to its owner.
    pub name: msg::Channel,
    /// This worker's subscribers, densely packed.
    pub subs: Vec<ConnKey>,
}

/// The channels of every app on one worker.
#[derive(Debug, Default)]
pub struct Registry {
    index: Vec<HashMap<Box<str>, ChanIdx>>,
    channels: Slab<Channel>,
}

impl Registry {
    /// An empty registry for `apps` apps.
    pub fn new(apps: usize) -> Registry {
        Registry {
            index: (0..apps).map(|_| HashMap::new()).collect(),
            channels: Slab::new(),
        }
    }

    /// Makes room for `apps` apps (a reload added some; indices never shrink).
    pub fn grow(&mut self, apps: usize) {
        if self.index.len() < apps {
            self.index.resize_with(apps, HashMap::new);
        }
    }

    /// The channel `name` of `app`, if anyone on this worker is subscribed.
    pub fn find(&self, app: AppIdx, name: &str) -> Option<ChanIdx> {
        self.index[app.0 as usize].get(name).copied()
    }

    /// The channel at `idx`.
    pub fn get(&self, idx: ChanIdx) -> &Channel {
        &self.channels[idx.0 as usize]
    }

    /// Adds `key` to channel `name` (creating it) and returns the channel and the position.
    pub fn add(&mut self, app: AppIdx, name: &msg::Channel, key: ConnKey) -> (ChanIdx, u32) {
        let idx = match self.find(app, name.as_str()) {
            Some(idx) => idx,
            None => {
                let idx = ChanIdx(self.channels.insert(Channel {
                    app,
                    name: name.clone(),
                    subs: Vec::new(),
                }) as u32);
                self.index[app.0 as usize].insert(name.as_str().into(), idx);
                idx
            }
        };
        let ch = &mut self.channels[idx.0 as usize];
        ch.subs.push(key);
        (idx, (ch.subs.len() - 1) as u32)
    }

    /// Removes the subscriber at `pos` of channel `idx`. Returns the subscriber that moved into
    /// `pos`, if any, so its caller can update that connection's remembered position; removes the
    /// channel when it becomes empty.
    pub fn remove(&mut self, idx: ChanIdx, pos: u32) -> Option<ConnKey> {
        let ch = &mut self.channels[idx.0 as usize];
        ch.subs.swap_remove(pos as usize);
        let moved = ch.subs.get(pos as usize).copied();
        if ch.subs.is_empty() {
            let ch = self.channels.remove(idx.0 as usize);
            self.index[ch.app.0 as usize].remove(ch.name.as_str());
        }
        moved
    }

    /// Subscriptions to the channels of `app` on this worker (read when statistics are asked
    /// for, never kept up to date on the way).
    pub fn subscriptions(&self, app: AppIdx) -> u64 {
        self.index[app.0 as usize]
            .values()
            .map(|idx| self.get(*idx).subs.len() as u64)
            .sum()
    }

    /// Number of channels with at least one subscriber on this worker.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether no channel has a subscriber on this worker.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn news() -> msg::Channel {
        msg::Channel::new(
            ringcast_protocol::pusher::channel::ChannelName::parse("news", &Default::default())
                .unwrap(),
        )
    }

    fn key(i: u32) -> ConnKey {
        ConnKey {
            slot: i,
            generation: 0,
        }
    }

    #[test]
    fn removal_reports_the_moved_subscriber_and_drops_empty_channels() {
        let mut r = Registry::new(2);
        let (c, p0) = r.add(AppIdx(0), &news(), key(0));
        let (_, p1) = r.add(AppIdx(0), &news(), key(1));
        let (_, p2) = r.add(AppIdx(0), &news(), key(2));
        assert_eq!((p0, p1, p2), (0, 1, 2));
        assert!(
            r.find(AppIdx(1), "news").is_none(),
            "apps are separate namespaces"
        );
        assert_eq!(r.remove(c, 0), Some(key(2)));
        assert_eq!(r.get(c).subs, vec![key(2), key(1)]);
        assert_eq!(r.subscriptions(AppIdx(0)), 2);
        assert_eq!(r.subscriptions(AppIdx(1)), 0);
        assert_eq!(r.remove(c, 1), None);
        assert_eq!(r.remove(c, 0), None);
        assert!(r.find(AppIdx(0), "news").is_none());
        assert!(r.is_empty());
    }
}
