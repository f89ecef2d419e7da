//! Integration tests across the crates, one binary with topic modules.
mod browser;
mod examples;
mod model_flow;
mod onnx;
mod support;
mod workflow;
