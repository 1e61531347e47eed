//! What operators run beside the server: `hearth admin …` (`admin`) and
//! `hearth backup` (`backup`).

pub mod admin;
pub mod backup;
