//! End-to-end tests: each module drives the real `qtool` binary for one command or
//! scenario and checks what a user would notice (output, files on disk, exit codes).

mod common;

mod admin;
mod concurrency;
mod crash;
mod dequeue;
mod disk;
mod dump;
mod enqueue;
mod exit_codes;
mod faults;
mod generated;
mod handlers;
mod hostile;
mod mailman;
mod redis;
mod runner;
mod seed;
mod supervisor;
