//! Newtypes for the engine's identifiers, so that a worker index is never mistaken for an app
//! index or a connection slot.

/// A worker (shard) index: one per pinned thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShardId(pub u16);

/// An app's index in the server's app table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppIdx(pub u32);

/// A connection's key in its worker's slab: the slot plus the generation the slot had when the
/// connection took it. A slot is reused after a connection leaves; the generation makes a stale
/// key (held by a registry entry or a task that outlived its connection) miss instead of hitting
/// the slot's next occupant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub slot: u32,
    pub generation: u32,
}

/// A channel's index in its worker's registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChanIdx(pub u32);
