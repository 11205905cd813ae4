//! The Vantage coordinator: ingests raw results from probes, applies consensus windows and
//! keeps each vendor's state. It is built out by the ingest and consensus work; for now it
//! only reports its version.
