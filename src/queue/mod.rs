//! Queues on disk.

pub mod mailman;
