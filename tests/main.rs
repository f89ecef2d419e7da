//! Integration tests across the crates, one binary with topic modules.
