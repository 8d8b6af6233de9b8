//! qtool: GNU Mailman 3's switchboards and runners as a library.

pub mod error;
pub mod metadata;
pub mod queue;

pub use error::{Error, Result};
pub use metadata::{Metadata, Value};
pub mod admin;
pub mod config;
pub mod fault;
pub mod handler;
pub mod inspect;
pub mod runner;
pub mod supervisor;
