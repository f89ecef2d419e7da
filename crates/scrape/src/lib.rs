//! gemstones-scrape (work in progress).
#![deny(missing_docs)]
