//! Mailman 3 queue files (placeholder).
