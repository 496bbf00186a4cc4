//! The Pusher HTTP API: how an application's server publishes events and queries state.
//!
//! A request is handled in this order, each step a pure function of this module:
//! 1. [`route::strip_prefix`] removes the path prefix ringcast is mounted under, if any;
//! 2. [`route::route`] maps method and path to a [`route::Route`] (404 / 405);
//! 3. [`query::Query::parse`] decodes the query string;
//! 4. [`signature::verify`] authenticates the request against the app's key and secret, the
//!    current time and the body (401);
//! 5. [`body::parse_event`], [`body::parse_batch`] or [`body::parse_legacy_event`] turn a
//!    trigger body into validated [`body::TriggerEvent`]s (400 / 413).
//!
//! Every failure is an [`ApiError`], which knows its HTTP status and renders its own JSON
//! response. The engine does the rest: looking up the app, publishing, and answering queries
//! from its channel registry.

pub mod body;
pub mod error;
pub mod query;
pub mod route;
pub mod signature;

pub use error::ApiError;
