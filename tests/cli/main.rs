//! End-to-end tests: each module drives the real `qtool` binary for one command or
//! scenario and checks what a user would notice (output, files on disk, exit codes).

mod common;

mod generated;
mod seed;
