//! Hearth's browser client.
