//! Mailman 3 queue files (placeholder while the codec is written).
use crate::error::{Error, Result};
use crate::metadata::Metadata;

pub struct MailmanEntry {
    pub message: Vec<u8>,
    pub metadata: Metadata,
    pub message_was_text: bool,
}

pub fn looks_like_pickle(head: &[u8]) -> bool {
    head.first() == Some(&0x80)
}

pub fn decode(_bytes: &[u8]) -> Result<MailmanEntry> {
    Err(Error::data("Mailman files not supported yet", ""))
}

pub fn encode(_message: &[u8], _metadata: &Metadata) -> Result<Vec<u8>> {
    Err(Error::data("Mailman files not supported yet", ""))
}
