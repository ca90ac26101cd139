//! tintype's integration tier: one test binary, one shared harness.
//!
//! - `api`, `cli`, `variants`, `crash`, `hostile`, `gc`, `budget`, `limits`,
//!   `diskfull`: the real `tintype` binary, started
//!   as a child process on a free loopback port over a temporary data
//!   directory, driven over HTTP and on its command line.
//! - `console`: the web console in headless Chromium through WebDriver.
//! - `jobs`: the durable job queue, through the engine over a real SQLite
//!   file and blob directory.

mod api;
mod budget;
mod caches;
mod cli;
mod console;
mod crash;
mod diskfull;
mod gc;
mod harness;
mod hostile;
mod jobs;
mod limits;
mod mutations;
mod openapi;
mod operability;
mod photos;
mod quota;
mod variants;
