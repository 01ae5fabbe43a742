//! One module per client command.

pub mod deploy;
pub mod ls;
pub mod rm;
pub mod show;
