//! Wire formats: pure encoders and decoders between bytes/text and typed values; no I/O.

pub mod frame;
pub mod hello;
pub mod info;
pub mod resp;
