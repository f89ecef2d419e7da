//! gemstones-dataset (work in progress).
#![deny(missing_docs)]
