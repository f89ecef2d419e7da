//! Integration tests across the crates, one binary with topic modules.
mod browser;
mod examples;
mod model_flow;
mod outputs;
mod support;
mod workflow;
