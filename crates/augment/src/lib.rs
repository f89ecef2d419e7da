//! gemstones-augment (work in progress).
#![deny(missing_docs)]
