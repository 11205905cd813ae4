//! The Vantage coordinator: ingests raw results from probes into a store and (next) applies
//! consensus windows to keep each vendor's state.
//!
//! Layout:
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation; all SQL lives there.

pub mod store;
