//! updraft-publisher integration tests, built as one binary.

mod interop;
mod keys;
mod store;
