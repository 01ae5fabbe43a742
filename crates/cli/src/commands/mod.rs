//! One module per client command.

pub mod bill;
pub mod deploy;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod rm;
pub mod show;
pub mod top;
